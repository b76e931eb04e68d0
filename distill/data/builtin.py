"""The project's own generator of small, verifiable multi-step reasoning problems.

Rows come out in exactly the OpenThoughts-114k `default` schema, so the built-in data goes through
the same normalization path as real downloaded data. Numbers stay small and answers are integers
below 1000, because the default student model (135M parameters) has to be able to learn them.
Every step line contains its arithmetic as "a op b = c", which tests check for correctness.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice

from distill.data.formats import (
    BEGIN_SOLUTION,
    BEGIN_THOUGHT,
    END_SOLUTION,
    END_THOUGHT,
)

SYSTEM_PROMPT = "You are a helpful assistant. Think step by step inside <think> tags, then give the final answer."


def default_system(dataset: str) -> str | None:
    """The system prompt a model trained on ``dataset`` saw (the built-in data has one; others carry their own)."""
    return SYSTEM_PROMPT if dataset.startswith("builtin:") else None

TRAIN_SPLIT = "train"
EVAL_SPLIT = "eval"
# Any held-out split name maps to the same held-out bucket: the generator has one held-out set.
_SPLIT_ALIASES = {
    "train": TRAIN_SPLIT,
    "eval": EVAL_SPLIT,
    "validation": EVAL_SPLIT,
    "val": EVAL_SPLIT,
    "test": EVAL_SPLIT,
}
# One question in ten belongs to the held-out bucket, decided by the text itself so that
# train and eval can never share a question whatever seeds or sizes are asked for.
_EVAL_SHARE = 10
_MAX_ANSWER = 1000
# How many candidates in a row may be rejected before we conclude the space is exhausted.
_MAX_CONSECUTIVE_MISSES = 20_000


@dataclass(frozen=True)
class Problem:
    question: str
    steps: tuple[str, ...]
    answer: int
    family: str

    @property
    def solution(self) -> str:
        return f"The answer is {self.answer}."


_PEOPLE = [
    ("Tom", "he"),
    ("Anna", "she"),
    ("Ben", "he"),
    ("Maria", "she"),
    ("Sam", "he"),
    ("Lily", "she"),
    ("Omar", "he"),
    ("Mei", "she"),
    ("Jack", "he"),
    ("Zoe", "she"),
    ("Leo", "he"),
    ("Nina", "she"),
]
# (plural item, container)
_ITEMS = [
    ("apples", "bag"),
    ("pencils", "box"),
    ("cookies", "jar"),
    ("marbles", "bag"),
    ("stickers", "sheet"),
    ("eggs", "carton"),
    ("cards", "pack"),
    ("oranges", "crate"),
    ("crayons", "box"),
    ("buttons", "tin"),
]
# (seller, plural goods)
_SELLERS = [
    ("A baker", "cakes"),
    ("A farmer", "melons"),
    ("A florist", "bouquets"),
    ("A student", "bracelets"),
    ("A shop", "notebooks"),
    ("A cafe", "sandwiches"),
]
# percent -> divisor, so "r% of p" is a single exact division a small model can copy
_PERCENT_DIVISORS = {5: 20, 10: 10, 20: 5, 25: 4, 50: 2}


def _person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(_PEOPLE)


def _items_problem(rng: random.Random) -> Problem | None:
    name, pron = _person(rng)
    items, container = rng.choice(_ITEMS)
    groups, per = rng.randint(2, 9), rng.randint(3, 12)
    total = groups * per
    question = [f"{name} buys {groups} {container}s of {items} with {per} {items} in each {container}."]
    steps = [f"{name} has {groups} {container}s with {per} {items} each, so {groups} * {per} = {total} {items}."]
    ask = f"How many {items} does {name} have now?"
    n_ops = rng.randint(1, 3)
    for i in range(n_ops):
        op = rng.choice(["give", "buy", "share"] if i == n_ops - 1 else ["give", "buy"])
        friends = [k for k in range(2, 10) if total % k == 0 and total // k > 1]
        if op == "share" and friends:
            k = rng.choice(friends)
            question.append(f"Then {pron} shares them equally among {k} friends.")
            ask = f"How many {items} does each friend get?"
            steps.append(f"Sharing {total} {items} among {k} friends gives {total} / {k} = {total // k} each.")
            total //= k
        elif op != "buy" and total > 2:
            k = rng.randint(1, total - 2)
            question.append(f"Then {pron} gives away {k} {items}.")
            steps.append(f"After giving away {k}, {total} - {k} = {total - k} {items} are left.")
            total -= k
        else:
            k = rng.randint(2, 20)
            question.append(f"Then {pron} buys {k} more {items}.")
            steps.append(f"Buying {k} more makes {total} + {k} = {total + k} {items}.")
            total += k
    return Problem(" ".join([*question, ask]), tuple(steps), total, "items")


def _money_problem(rng: random.Random) -> Problem | None:
    seller, goods = rng.choice(_SELLERS)
    count, price = rng.randint(5, 30), rng.randint(2, 15)
    revenue = count * price
    cost = rng.randint(1, revenue - 1)
    profit = revenue - cost
    question = f"{seller} sells {count} {goods} for ${price} each. The materials cost ${cost}."
    steps = [
        f"The sales bring in {count} * {price} = {revenue} dollars.",
        f"The profit is {revenue} - {cost} = {profit} dollars.",
    ]
    partners = [k for k in range(2, 6) if profit % k == 0]
    if partners and rng.random() < 0.5:
        k = rng.choice(partners)
        question += f" The profit is shared equally by {k} partners. How many dollars does each partner get?"
        steps.append(f"Each partner gets {profit} / {k} = {profit // k} dollars.")
        return Problem(question, tuple(steps), profit // k, "money")
    return Problem(question + " How many dollars of profit are made?", tuple(steps), profit, "money")


def _units_problem(rng: random.Random) -> Problem | None:
    name, pron = _person(rng)
    kind = rng.choice(["minutes", "rope", "days", "grams"])
    if kind == "minutes":
        minutes, days = rng.choice([10, 15, 20, 30, 40, 45]), rng.randint(2, 6)
        daily = 60 + minutes
        question = (
            f"{name} practices the piano for 1 hour and {minutes} minutes every day. "
            f"How many minutes does {pron} practice in {days} days?"
        )
        steps: tuple[str, ...] = (
            "1 hour is 1 * 60 = 60 minutes.",
            f"Each day is 60 + {minutes} = {daily} minutes.",
            f"In {days} days that is {daily} * {days} = {daily * days} minutes.",
        )
        return Problem(question, steps, daily * days, "units")
    if kind == "rope":
        meters, piece = rng.randint(1, 9), rng.choice([10, 20, 25, 50])
        question = (
            f"A rope is {meters} meters long. {name} cuts it into pieces that are {piece} centimeters long. "
            "How many pieces does " + pron + " get?"
        )
        steps = (
            f"{meters} meters is {meters} * 100 = {meters * 100} centimeters.",
            f"{meters * 100} / {piece} = {meters * 100 // piece} pieces.",
        )
        return Problem(question, steps, meters * 100 // piece, "units")
    if kind == "days":
        weeks, extra = rng.randint(1, 4), rng.randint(1, 6)
        days = weeks * 7 + extra
        question = f"{name} goes on a trip for {weeks} weeks and {extra} days."
        day_steps = [f"{weeks} weeks is {weeks} * 7 = {weeks * 7} days.", f"{weeks * 7} + {extra} = {days} days."]
        if rng.random() < 0.5:
            return Problem(question + " How many days long is the trip?", tuple(day_steps), days, "units")
        spend = rng.randint(2, 30)
        question += f" {pron.capitalize()} spends ${spend} each day. How many dollars does {pron} spend?"
        day_steps.append(f"{days} * {spend} = {days * spend} dollars.")
        return Problem(question, tuple(day_steps), days * spend, "units")
    kilos, portion = rng.randint(1, 3), rng.choice([50, 100, 200, 250, 500])
    question = f"A bag holds {kilos} kilograms of rice. How many {portion}-gram portions can {name} make from it?"
    steps = (
        f"{kilos} kilograms is {kilos} * 1000 = {kilos * 1000} grams.",
        f"{kilos * 1000} / {portion} = {kilos * 1000 // portion} portions.",
    )
    return Problem(question, steps, kilos * 1000 // portion, "units")


def _linear_problem(rng: random.Random) -> Problem | None:
    a, x, b = rng.randint(2, 9), rng.randint(1, 20), rng.randint(1, 30)
    form = rng.choice(["plus", "minus", "bracket", "words"])
    if form == "bracket":
        c = a * (x + b)
        steps: tuple[str, ...] = (
            f"Divide both sides by {a}: {c} / {a} = {x + b}, so x + {b} = {x + b}.",
            f"Subtract {b} from both sides: x = {x + b} - {b} = {x}.",
        )
        return Problem(f"Solve for x: {a}(x + {b}) = {c}.", steps, x, "linear")
    if form == "minus":
        c = a * x - b
        if c <= 0:
            return None
        steps = (
            f"Add {b} to both sides: {c} + {b} = {a * x}, so {a}x = {a * x}.",
            f"Divide both sides by {a}: x = {a * x} / {a} = {x}.",
        )
        return Problem(f"Solve for x: {a}x - {b} = {c}.", steps, x, "linear")
    c = a * x + b
    steps = (
        f"Subtract {b} from both sides: {c} - {b} = {a * x}, so {a}x = {a * x}.",
        f"Divide both sides by {a}: x = {a * x} / {a} = {x}.",
    )
    if form == "plus":
        return Problem(f"Solve for x: {a}x + {b} = {c}.", steps, x, "linear")
    name, _ = _person(rng)
    question = f"{name} thinks of a number, multiplies it by {a} and adds {b}. The result is {c}. What is the number?"
    return Problem(question, (f"Call the number x, so {a}x + {b} = {c}.", *steps), x, "linear")


def _sequence_problem(rng: random.Random) -> Problem | None:
    if rng.random() < 0.6:
        start, diff = rng.randint(1, 20), rng.randint(2, 9)
        terms = [start + diff * i for i in range(4)]
        shown = ", ".join(map(str, terms))
        first = f"Each term is {diff} more than the one before, since {terms[1]} - {terms[0]} = {diff}."
        if rng.random() < 0.5:
            return Problem(
                f"What is the next number in the sequence {shown}?",
                (first, f"So the next term is {terms[-1]} + {diff} = {terms[-1] + diff}."),
                terms[-1] + diff,
                "sequence",
            )
        n = rng.randint(6, 12)
        gaps = n - 1
        answer = start + gaps * diff
        steps: tuple[str, ...] = (
            first,
            f"Term number {n} comes {n} - 1 = {gaps} steps after the first term.",
            f"{gaps} * {diff} = {gaps * diff}, and {start} + {gaps * diff} = {answer}.",
        )
        return Problem(f"The sequence {shown}, ... keeps going. What is term number {n}?", steps, answer, "sequence")
    start, ratio = rng.randint(1, 5), rng.randint(2, 3)
    terms = [start * ratio**i for i in range(4)]
    steps = (
        f"Each term is {ratio} times the one before, since {terms[1]} / {terms[0]} = {ratio}.",
        f"So the next term is {terms[-1]} * {ratio} = {terms[-1] * ratio}.",
    )
    shown = ", ".join(map(str, terms))
    return Problem(f"What is the next number in the sequence {shown}?", steps, terms[-1] * ratio, "sequence")


def _percent_problem(rng: random.Random) -> Problem | None:
    percent, divisor = rng.choice(list(_PERCENT_DIVISORS.items()))
    kind = rng.choice(["sale", "students", "growth"])
    if kind == "sale":
        price = divisor * rng.randint(1, 400 // divisor)
        off = price // divisor
        sale = price - off
        question = f"A jacket costs ${price}. It is on sale for {percent}% off."
        sale_steps = [
            f"{percent}% of {price} is {price} / {divisor} = {off} dollars.",
            f"The sale price is {price} - {off} = {sale} dollars.",
        ]
        if sale > 0 and rng.random() < 0.4:
            count = rng.randint(2, 4)
            name, pron = _person(rng)
            question += f" {name} buys {count} jackets at the sale price. How many dollars does {pron} pay?"
            sale_steps.append(f"{count} * {sale} = {count * sale} dollars.")
            return Problem(question, tuple(sale_steps), count * sale, "percent")
        return Problem(question + " What is the sale price in dollars?", tuple(sale_steps), sale, "percent")
    if kind == "students":
        students = divisor * rng.randint(1, 300 // divisor)
        walkers = students // divisor
        question = (
            f"A school has {students} students. {percent}% of them walk to school. How many students do not walk?"
        )
        steps: tuple[str, ...] = (
            f"{percent}% of {students} is {students} / {divisor} = {walkers} students.",
            f"{students} - {walkers} = {students - walkers} students do not walk.",
        )
        return Problem(question, steps, students - walkers, "percent")
    people = divisor * rng.randint(1, 600 // divisor)
    growth = people // divisor
    question = f"A village had {people} people. The population grew by {percent}%. How many people live there now?"
    steps = (
        f"{percent}% of {people} is {people} / {divisor} = {growth} people.",
        f"{people} + {growth} = {people + growth} people.",
    )
    return Problem(question, steps, people + growth, "percent")


_FAMILIES: tuple[Callable[[random.Random], Problem | None], ...] = (
    _items_problem,
    _money_problem,
    _units_problem,
    _linear_problem,
    _sequence_problem,
    _percent_problem,
)


def _bucket(split: str) -> str:
    try:
        return _SPLIT_ALIASES[split]
    except KeyError:
        raise ValueError(f"unknown split {split!r}; use one of {sorted(_SPLIT_ALIASES)}") from None


def split_of(question: str) -> str:
    """The split a question belongs to, fixed by its text so splits are disjoint by construction."""
    digest = hashlib.sha256(question.encode("utf-8")).digest()
    return EVAL_SPLIT if int.from_bytes(digest[:8], "big") % _EVAL_SHARE == 0 else TRAIN_SPLIT


def iter_problems(seed: int = 0, split: str = "train") -> Iterator[Problem]:
    """Distinct problems of one split, endlessly (until the problem space runs out)."""
    bucket = _bucket(split)
    rng = random.Random(f"builtin:reasoning:{seed}:{bucket}")
    seen: set[str] = set()
    misses = 0
    while misses < _MAX_CONSECUTIVE_MISSES:
        problem = rng.choice(_FAMILIES)(rng)
        if (
            problem is None
            or not 0 <= problem.answer < _MAX_ANSWER
            or problem.question in seen
            or split_of(problem.question) != bucket
        ):
            misses += 1
            continue
        misses = 0
        seen.add(problem.question)
        yield problem
    raise RuntimeError(f"the built-in generator ran out of distinct {bucket} problems after {len(seen)}")


def generate_problems(n: int, seed: int = 0, split: str = "train") -> list[Problem]:
    return list(islice(iter_problems(seed, split), n))


def problem_to_row(problem: Problem) -> dict:
    """One problem as an OpenThoughts-114k `default` row."""
    reasoning = "\n".join(problem.steps)
    reply = (
        f"{BEGIN_THOUGHT}\n\n{reasoning}\n\n{END_THOUGHT}\n\n{BEGIN_SOLUTION}\n\n{problem.solution}\n\n{END_SOLUTION}"
    )
    return {
        "system": SYSTEM_PROMPT,
        "conversations": [{"from": "user", "value": problem.question}, {"from": "assistant", "value": reply}],
    }


def generate_rows(n: int, seed: int = 0, split: str = "train") -> list[dict]:
    """`n` distinct rows, deterministic for (seed, split); a shorter n gives a prefix of a longer one."""
    return [problem_to_row(p) for p in generate_problems(n, seed, split)]
