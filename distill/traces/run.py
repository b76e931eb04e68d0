"""The generate stage: ask the teacher, judge every trace, keep what the policy picks, write the files.

``plan`` reads the problems and takes out duplicates, benchmark problems and (``--mode all``) the held-out
problems, before any teacher call. ``generate`` sends ``num_generations`` requests per problem through the
engine; as each problem's last trace arrives it is graded, judged and appended to ``generations.jsonl``, so a
stopped job keeps every finished problem and ``--resume`` asks only the others. At the end the file is rewritten
with each problem once, and ``dataset.jsonl``, ``data_report.json`` and the dataset card are written.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from distill.config import RunConfig
from distill.data.builtin import EVAL_SPLIT, default_system
from distill.errors import RunCancelled, one_line
from distill.evaluation.benchmark import BenchmarkSettings
from distill.evaluation.grading import grade_many
from distill.evaluation.stats import accuracy_interval, pass_at_k_table
from distill.evaluation.suites import HELDOUT, Problem, Suite, SuiteError, load_suite, parse_benchmarks
from distill.generation.engine import Engine, Generation, GenerationCancelled, Prompt
from distill.reasoning import Split, with_thought
from distill.rundir import RunDir
from distill.traces.card import write_card
from distill.traces.filters import contamination, duplicates
from distill.traces.problems import ProblemError, read_problems
from distill.traces.verdicts import REJECTIONS, sample_record, verdicts

log = logging.getLogger("distill")
TEACHER = "teacher"  # the engine's name for the teacher model
TEACHER_KEY_ENV = "DISTILL_TEACHER_API_KEY"
LOG_EVERY_S = 10.0


@dataclass
class TracePlan:
    problems: Suite  # every problem read, in order
    asked: list[Problem]  # those the teacher is asked
    held_out: list[Problem]  # --mode all: evaluated, never asked
    dropped: dict[str, dict[str, Any]]  # problem id -> its generations.jsonl row (duplicate / contaminated)
    system: str | None
    decontaminated_against: list[str] = field(default_factory=list)
    not_decontaminated: dict[str, str] = field(default_factory=dict)  # suite -> why it could not be loaded


def messages_for(config: RunConfig, system: str | None, question: str) -> list[dict[str, str]]:
    """The conversation the teacher is asked, and the training row's prompt (``{problem}`` replaced, not
    ``str.format``: templates hold ``\\boxed{}``)."""
    user = config.teacher_prompt.replace("{problem}", question)
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]


def decontamination_suites(config: RunConfig) -> tuple[list[str], bool]:
    """(suite specs, explicit): ``--decontaminate`` as given, else every ``--benchmarks`` suite but heldout."""
    if config.decontaminate is not None:
        return list(config.decontaminate), True
    return [b for b in config.benchmarks if parse_benchmarks([b])[0].name != HELDOUT], False


def _benchmark_texts(config: RunConfig) -> tuple[dict[str, list[str]], dict[str, str]]:
    specs, explicit = decontamination_suites(config)
    texts: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    for spec in parse_benchmarks(specs):
        if spec.name == HELDOUT:
            raise ProblemError("--decontaminate: heldout is not a benchmark of its own; name suites such as math500")
        try:
            suite = load_suite(spec, seed=config.seed)
        except SuiteError as e:
            if explicit:
                raise ProblemError(f"--decontaminate: {e}") from None
            skipped[spec.name] = one_line(e)
            log.warning("Not decontaminated against %s: %s", spec.name, one_line(e))
            continue
        texts[spec.name] = [str(p.meta.get("question") or p.prompt) for p in suite.problems]
    return texts, skipped


def plan(config: RunConfig, hold_out: int = 0) -> TracePlan:
    """The problems, and which are asked, dropped or held out. ProblemError before any teacher call."""
    limit = None if config.max_samples is None else config.max_samples + hold_out
    problems = read_problems(config.dataset, limit)
    system = config.teacher_system or default_system(config.dataset)
    pool, held_out = _split_held_out(problems, hold_out, config.dataset)
    dropped: dict[str, dict[str, Any]] = {}
    for pid, first in duplicates(pool, config.dedup_jaccard).items():
        dropped[pid] = {"status": "duplicate", "duplicate_of": first}
    texts, skipped = _benchmark_texts(config)
    for pid, suites in contamination([p for p in pool if p.id not in dropped], texts).items():
        dropped[pid] = {"status": "contaminated", "contaminated_by": suites}
    asked = [p for p in pool if p.id not in dropped]
    log.info("Problems: %d read from %s, %d duplicates, %d contaminated (%s), %d held out, %d to ask",
             len(pool) + len(held_out), problems.source, sum(d["status"] == "duplicate" for d in dropped.values()),
             sum(d["status"] == "contaminated" for d in dropped.values()), ", ".join(texts) or "no benchmark",
             len(held_out), len(asked))
    if not asked:
        raise ProblemError(f"--dataset: no problem of {config.dataset} is left to ask (all duplicates or contaminated)")
    return TracePlan(Suite(problems.name, problems.grader, problems.source, pool, problems.skipped), asked,
                     held_out, dropped, system, list(texts), skipped)


def _split_held_out(problems: Suite, n: int, dataset: str) -> tuple[list[Problem], list[Problem]]:
    """(the problems to ask, the last ``n`` held out); the built-in generator has a held-out split of its own."""
    pool = list(problems.problems)
    if not n:
        return pool, []
    if problems.name.startswith("builtin:"):  # disjoint by construction
        return pool, read_problems(f"{problems.name}?split={EVAL_SPLIT}", n).problems
    if len(pool) <= n:
        raise ProblemError(f"--eval_samples: holding out {n} problems leaves none to ask the teacher: {dataset} has "
                           f"{len(pool)}")
    return pool[:-n], pool[-n:]


class TraceLog:
    """``generations.jsonl``: one row per problem, appended as each finishes (a torn last line is ignored)."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: dict[str, dict[str, Any]] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the line a killed job was writing
                self.rows[str(row["id"])] = row
        self._lock = threading.Lock()

    def add(self, row: dict[str, Any]) -> None:
        with self._lock, self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
            self.rows[str(row["id"])] = row

    def compact(self, order: list[str]) -> list[dict[str, Any]]:
        """Rewrite the file with each problem once, in ``order``; returns those rows."""
        rows = [self.rows[i] for i in order if i in self.rows]
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        tmp.replace(self.path)
        return rows


@dataclass(frozen=True)
class RowContext:
    """What a problem's row needs besides the problem and its samples (picklable: a judging process gets it)."""

    config: RunConfig
    grader: str
    source: str
    system: str | None
    decontaminated_against: tuple[str, ...]

    @classmethod
    def of(cls, config: RunConfig, plan_: TracePlan) -> RowContext:
        return cls(config, plan_.problems.grader, plan_.problems.source, plan_.system,
                   tuple(plan_.decontaminated_against))

    def base_row(self, p: Problem, index: int, contaminated: tuple[str, ...] = ()) -> dict[str, Any]:
        return {"id": p.id, "index": index, "problem": p.prompt, "answer": p.answer, "grader": self.grader,
                "source": self.source, "teacher": self.config.teacher_model,
                **{f"contaminated_{s}": s in contaminated for s in self.decontaminated_against}}


class Finisher:
    """One problem's samples → its ``generations.jsonl`` row: graded (math-verify), measured in the student's
    tokens, judged."""

    def __init__(self, context: RowContext, tokenizer: Any):
        self.context, self.tok = context, tokenizer

    def student_tokens(self, messages: list[dict[str, str]], texts: list[str]) -> list[int]:
        """Each reply's training row in the student's tokens, as training counts them (rendered, tokenized at once)."""
        if not texts:
            return []
        rendered = [self.tok.apply_chat_template([*messages, {"role": "assistant", "content": t}], tokenize=False)
                    for t in texts]
        return [len(ids) for ids in self.tok(rendered, add_special_tokens=False)["input_ids"]]

    def __call__(self, index: int, p: Problem, gens: list[Generation]) -> dict[str, Any]:
        ctx = self.context
        gens = [_normalized(g) for g in gens]
        answered = [i for i, g in enumerate(gens) if g.error is None]
        grades = dict(zip(answered, grade_many([(gens[i].text, p.answer, ctx.grader) for i in answered]),
                          strict=True))
        messages = messages_for(ctx.config, ctx.system, p.prompt)
        closed = [i for i, g in enumerate(gens)
                  if g.error is None and g.finish_reason == "stop" and Split.of(g.text).closed]
        lengths = dict(zip(closed, self.student_tokens(messages, [gens[i].text for i in closed]), strict=True))
        samples = [sample_record(g, grades.get(i), lengths.get(i)) for i, g in enumerate(gens)]
        row = {**ctx.base_row(p, index),
               "status": "answered" if answered else "failed", "prompt_messages": messages,
               "generations": [g.text for g in gens], "finish_reasons": [g.finish_reason for g in gens],
               "correctness_math_verify": [s["correct"] for s in samples],
               "is_reasoning_complete": [s["complete"] for s in samples],
               "correctness_count": sum(s["correct"] for s in samples),
               "extracted": [s["extracted"] for s in samples], "looping": [s["looping"] for s in samples],
               "sample_tokens": [g.new_tokens for g in gens], "prompt_tokens": [g.prompt_tokens for g in gens],
               "student_tokens": [s["student_tokens"] for s in samples], "errors": [g.error for g in gens],
               "failure": next((g.error for g in gens if g.error), None) if not answered else None}
        return judge(row, ctx.config)


class _Collector:
    """Turns finished generations into finished problems and writes them, in the thread that called ``generate``
    (the main one, where math-verify's timeouts work); the engine runs in another."""

    def __init__(self, store: TraceLog, jobs: list[tuple[int, Problem]], n: int, finish: Finisher,
                 on_done: Callable[[dict[str, Any]], None]):
        self.store, self.jobs, self.n, self.finish, self.on_done = store, jobs, n, finish, on_done
        self.pending: dict[int, dict[int, Generation]] = {}
        self.inbox: queue.Queue[tuple[int, Generation] | None] = queue.Queue()
        self.error: BaseException | None = None

    def put(self, prompt_index: int, gen: Generation) -> None:
        self.inbox.put((prompt_index, gen))

    def end(self) -> None:
        self.inbox.put(None)

    def drain(self) -> None:
        """Until ``end``: every problem whose last sample arrived is finished and written."""
        while (item := self.inbox.get()) is not None:
            job, k = divmod(item[0], self.n)
            got = self.pending.setdefault(job, {})
            got[k] = item[1]
            if len(got) < self.n or self.error is not None:
                continue
            del self.pending[job]
            try:
                row = self.finish(*self.jobs[job], [got[i] for i in range(self.n)])
                self.store.add(row)
                self.on_done(row)
            except Exception as e:  # noqa: BLE001 - stops the engine; re-raised once it has stopped
                self.error = e


def judge(row: dict[str, Any], config: RunConfig) -> dict[str, Any]:
    """The row's verdicts under the current ``--keep`` and ``--max_seq_length`` (so a resumed job with another
    policy re-judges the stored traces without asking the teacher again), and ``messages``: the first kept one."""
    samples = [{"text": t, "error": e, "looping": lp, "complete": c, "extracted": x, "correct": ok,
                "student_tokens": st, "tokens": n}
               for t, e, lp, c, x, ok, st, n in zip(row["generations"], row["errors"], row["looping"],
                                                    row["is_reasoning_complete"], row["extracted"],
                                                    row["correctness_math_verify"], row["student_tokens"],
                                                    row["sample_tokens"], strict=True)]
    judged = verdicts(samples, config.keep, config.max_seq_length)
    first = judged.index("kept") if "kept" in judged else None
    row["verdicts"] = judged
    row["messages"] = [*row["prompt_messages"], {"role": "assistant", "content": row["generations"][first]}] \
        if first is not None else []
    return row


def _normalized(g: Generation) -> Generation:
    """The text in the trained format: ``<think>\\n…\\n</think>\\n\\n{answer}`` (a base reply stays as it is)."""
    split = Split.of(g.text)
    if not split.opened:
        return g
    return replace(g, text=with_thought(split.thought, split.answer, split.closed))


@dataclass
class TraceResult:
    report: dict[str, Any]
    rows: list[dict[str, Any]]  # generations.jsonl, each problem once
    kept: int


class _Progress:
    """Counts finished problems, the token budget, and says how it goes (a log line at most every 10 s)."""

    def __init__(self, config: RunConfig, total: int, done: int, on_progress: Callable[[int, int], None] | None):
        self.config, self.total, self.done = config, total, done
        self.on_progress = on_progress
        self.tokens = self.correct = self.samples = self.kept = 0
        self.spent = threading.Event()
        self.last_log = time.monotonic()
        self.ask_s = 0.0  # wall time spent asking the teacher

    def add(self, row: dict[str, Any]) -> None:
        self.done += 1
        self.tokens += sum(row["sample_tokens"]) + sum(row["prompt_tokens"])
        self.samples += len(row["generations"])
        self.correct += row["correctness_count"]
        self.kept += row["verdicts"].count("kept")
        budget = self.config.max_teacher_tokens
        if budget is not None and self.tokens >= budget and not self.spent.is_set():
            log.info("Teacher token budget spent (%d of %d); stopping, keeping every finished problem",
                     self.tokens, budget)
            self.spent.set()
        if self.on_progress is not None:
            self.on_progress(self.done, self.total)
        if time.monotonic() - self.last_log >= LOG_EVERY_S or self.done == self.total:
            self.last_log = time.monotonic()
            log.info("generate: %d/%d problems (teacher pass@1 so far %.1f%%, %d traces kept, %d tokens)", self.done,
                     self.total, 100 * self.correct / max(self.samples, 1), self.kept, self.tokens)


# What makes stored traces the same teacher's answers to the same questions: --resume keeps them only if these agree.
TRACE_IDENTITY = ("dataset", "teacher_model", "teacher_url", "teacher_prompt", "teacher_system", "teacher_temperature",
                  "teacher_top_p", "teacher_max_tokens", "num_generations", "max_thinking_tokens", "seed")


def check_resumable(previous: dict[str, Any] | None, config: RunConfig, run: RunDir) -> None:
    """Without --resume stored traces are set aside (the job starts afresh); with it, they must come from the same
    teacher settings (--keep, --max_seq_length and --max_samples may change: the traces are judged again)."""
    if not run.generations.is_file():
        return
    if not config.resume:
        run.generations.unlink()
        return
    changed = [f for f in TRACE_IDENTITY if previous is not None and previous.get(f) != getattr(config, f)]
    if changed:
        raise ProblemError(f"--resume: the traces in {run.generations} were written with other settings "
                           f"({', '.join(f'--{f}' for f in changed)}); use a new --output_dir, or the same settings")


def generate(config: RunConfig, plan_: TracePlan, engine: Engine, tokenizer: Any, run: RunDir,
             should_cancel: Callable[[], bool] | None = None,
             on_progress: Callable[[int, int], None] | None = None) -> TraceResult:
    """Ask the teacher every problem not yet answered, then write the run's files."""
    t0 = time.perf_counter()
    store = TraceLog(run.generations)
    position = {p.id: i for i, p in enumerate(plan_.problems.problems)}
    context = RowContext.of(config, plan_)
    for p in plan_.problems.problems:  # duplicates and contaminated problems: recorded, never asked
        if p.id in plan_.dropped and p.id not in store.rows:
            dropped = plan_.dropped[p.id]
            store.add({**context.base_row(p, position[p.id], tuple(dropped.get("contaminated_by", ()))), **dropped})
    done = {i for i, r in store.rows.items() if r.get("status") == "answered"}
    todo = [(position[p.id], p) for p in plan_.asked if p.id not in done]
    if done:
        log.info("generate: %d of %d problems already answered; asking the other %d", len(plan_.asked) - len(todo),
                 len(plan_.asked), len(todo))
    progress = _Progress(config, len(plan_.asked), len(plan_.asked) - len(todo), on_progress)
    asked = {p.id for p in plan_.asked}
    progress.tokens = sum(sum(r["sample_tokens"]) + sum(r["prompt_tokens"]) for i, r in store.rows.items()
                          if i in asked and r.get("status") == "answered")
    stopped = _ask(config, plan_, engine, Finisher(context, tokenizer), store, todo, progress, should_cancel) \
        if todo else None
    for row in store.rows.values():
        if row.get("status") == "answered":
            judge(row, config)
    rows = store.compact([p.id for p in plan_.problems.problems])
    kept = write_dataset(config, rows, run.dataset)
    report = trace_report(config, plan_, rows, time.perf_counter() - t0, stopped)
    report["ask_s"] = round(progress.ask_s, 2)
    run.data_report.write_text(json.dumps(report, indent=2))
    write_card(run.dataset_card, config, report)
    f = report["funnel"]
    log.info("Traces: %d problems asked, %d samples, %d complete, %d correct, %d kept -> %s", f["asked"],
             f["samples"], f["complete"], f["correct"], f["kept"], run.dataset)
    return TraceResult(report, rows, kept)


def _ask(config: RunConfig, plan_: TracePlan, engine: Engine, finisher: Finisher, store: TraceLog,
         todo: list[tuple[int, Problem]], progress: _Progress, should_cancel: Callable[[], bool] | None) -> str | None:
    """Generate; None when every problem was answered, "budget" when the token budget stopped it."""
    if progress.spent.is_set() or (config.max_teacher_tokens is not None and progress.tokens >= config.max_teacher_tokens):
        return "budget"
    settings = BenchmarkSettings(num_samples=config.num_generations, temperature=config.teacher_temperature,
                                 top_p=config.teacher_top_p, max_new_tokens=config.teacher_max_tokens,
                                 max_thinking_tokens=config.max_thinking_tokens, seed=config.seed)
    prompts = [Prompt(model=TEACHER, messages=messages_for(config, plan_.system, p.prompt),
                      sampling=settings.sampling(index, k)) for index, p in todo for k in range(config.num_generations)]
    collector = _Collector(store, todo, config.num_generations, finisher, progress.add)

    def stop() -> bool:
        return progress.spent.is_set() or collector.error is not None or bool(should_cancel and should_cancel())

    failure: list[BaseException] = []

    def ask() -> None:
        try:
            engine.generate(prompts, should_cancel=stop, desc="teacher", on_result=collector.put)
        except BaseException as e:  # noqa: BLE001 - handed to the collecting thread
            failure.append(e)
        finally:
            collector.end()

    cpu0, wall0 = time.process_time(), time.perf_counter()
    asking = threading.Thread(target=ask, name="traces-teacher", daemon=True)
    asking.start()
    try:
        collector.drain()
    finally:
        asking.join()
    progress.ask_s += time.perf_counter() - wall0
    if collector.error is not None:
        raise collector.error
    if failure and isinstance(failure[0], GenerationCancelled):
        if progress.spent.is_set():
            return "budget"
        raise RunCancelled(f"cancelled during trace generation; {progress.done} finished problems are kept")
    if failure:
        raise failure[0]
    log.info("generate: %d samples in %.1f s (%.2f samples/s); client CPU %.2f ms per sample", len(prompts),
             progress.ask_s, len(prompts) / max(progress.ask_s, 1e-9),
             1000 * (time.process_time() - cpu0) / max(len(prompts), 1))
    return "budget" if progress.spent.is_set() else None


def write_dataset(config: RunConfig, rows: list[dict[str, Any]], path: Path) -> int:
    """One training row per kept trace, in a format ``--dataset`` reads (``messages`` with the thought)."""
    count = 0
    with path.open("w") as f:
        for r in rows:
            for k, verdict in enumerate(r.get("verdicts") or []):
                if verdict != "kept":
                    continue
                messages = [*r["prompt_messages"], {"role": "assistant", "content": r["generations"][k]}]
                f.write(json.dumps({"messages": messages, "problem": r["problem"], "answer": r["answer"],
                                    "ground_truth": r["answer"], "num_tokens": r["student_tokens"][k],
                                    "source": r["source"], "teacher": config.teacher_model, "id": r["id"],
                                    "sample": k}) + "\n")
                count += 1
    return count


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def teacher_stats(config: RunConfig, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The teacher's pass@1 (with its 95 % interval) and pass@k on the problems it answered, and how it writes."""
    answered = [r for r in rows if r.get("status") == "answered"]
    samples = [(r, k) for r in answered for k, e in enumerate(r["errors"]) if e is None]
    per_problem = [float(np.mean([r["correctness_math_verify"][k] for k, e in enumerate(r["errors"]) if e is None]))
                   for r in answered]
    n = config.num_generations
    whole = [r for r in answered if not any(r["errors"])]
    tokens = [r["sample_tokens"][k] for r, k in samples]
    lo, hi = accuracy_interval(per_problem, n, seed=config.seed) if per_problem else (None, None)
    return {
        "model": config.teacher_model, "url": config.teacher_url, "engine": "openai" if config.teacher_url else "hf",
        "problems": len(answered), "samples": len(samples),
        "pass@1": round(float(np.mean(per_problem)), 4) if per_problem else None,
        "pass@1_ci": [round(lo, 4), round(hi, 4)] if lo is not None else None,
        "pass@k": {str(k): round(v, 4) for k, v in pass_at_k_table([r["correctness_count"] for r in whole], n).items()}
        if whole else {},
        "complete_pct": _pct(sum(r["is_reasoning_complete"][k] for r, k in samples), len(samples)),
        "looping_pct": _pct(sum(r["looping"][k] for r, k in samples), len(samples)),
        "tokens_p50": float(np.percentile(tokens, 50)) if tokens else None,
        "tokens_p95": float(np.percentile(tokens, 95)) if tokens else None,
    }


def rows_report(config: RunConfig, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What ``generations.jsonl``'s rows alone tell: the funnel from the problems answered on, rejections by reason,
    the teacher, the tokens. While a job runs it is the report so far (``live``); the counts that need the plan
    (problems read, asked, held out) are None then."""
    status = Counter(r.get("status") for r in rows)
    verdict = Counter(v for r in rows for v in r.get("verdicts") or [])
    answered = [r for r in rows if r.get("status") == "answered"]
    kept_tokens = [r["student_tokens"][k] for r in rows for k, v in enumerate(r.get("verdicts") or []) if v == "kept"]
    return {
        "kind": "traces", "live": True,
        "funnel": {
            "problems_read": None, "duplicates": status["duplicate"], "contaminated": status["contaminated"],
            "held_out": None, "asked": None, "answered": len(answered), "failed": status["failed"], "unasked": None,
            "samples": sum(len(r["generations"]) for r in answered),
            "complete": sum(sum(r["is_reasoning_complete"]) for r in answered),
            "correct": sum(r["correctness_count"] for r in answered), "kept": verdict["kept"],
        },
        "rejected": {reason: verdict[reason] for reason in REJECTIONS},
        "contaminated_by": dict(Counter(s for r in rows for s in r.get("contaminated_by") or ())),
        "teacher": teacher_stats(config, rows),
        "tokens": {"prompt": sum(sum(r["prompt_tokens"]) for r in answered),
                   "completion": sum(sum(r["sample_tokens"]) for r in answered),
                   "kept_p50": float(np.percentile(kept_tokens, 50)) if kept_tokens else None,
                   "kept_p95": float(np.percentile(kept_tokens, 95)) if kept_tokens else None},
        "keep": config.keep, "num_generations": config.num_generations,
    }


def trace_report(config: RunConfig, plan_: TracePlan, rows: list[dict[str, Any]], seconds: float,
                 stopped: str | None) -> dict[str, Any]:
    """``data_report.json``: the funnel from problems read to rows kept, rejections by reason, the teacher."""
    report = rows_report(config, rows)
    f = report["funnel"]
    f.update(problems_read=len(plan_.problems.problems) + len(plan_.held_out), held_out=len(plan_.held_out),
             asked=len(plan_.asked), unasked=len(plan_.asked) - f["answered"] - f["failed"])
    report.update(live=False, decontaminated_against=plan_.decontaminated_against,
                  not_decontaminated=plan_.not_decontaminated, rows_without_answer=plan_.problems.skipped,
                  stopped=stopped, time_s=round(seconds, 1), dataset="dataset.jsonl")
    report["contaminated_by"] = {s: report["contaminated_by"].get(s, 0) for s in plan_.decontaminated_against}
    return report
