"""Recognize the supported row formats and normalize them into `ReasoningExample`s.

Supported rows (detected by their keys):
- OpenThoughts-114k `default`: {system, conversations: [{from, value}]}
- OpenThoughts-114k `metadata`: {problem, deepseek_reasoning, deepseek_solution, ground_truth_solution, domain, ...}
- {prompt, response} where the response holds <think>…</think> or OpenThoughts markers
- GSM8K: {question, answer} with the answer ending in "#### n"
- {messages: [{role, content}]} where the assistant turn holds <think>…</think> or OpenThoughts markers
Any row may add `ground_truth` and `domain`, which override what the format provides.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from distill.data.schema import BadRow, ReasoningExample
from distill.reasoning import THINK_CLOSE, THINK_OPEN, Split, with_thought

BEGIN_THOUGHT = "<|begin_of_thought|>"
END_THOUGHT = "<|end_of_thought|>"
BEGIN_SOLUTION = "<|begin_of_solution|>"
END_SOLUTION = "<|end_of_solution|>"
_OPENTHOUGHTS_MARKERS = (BEGIN_THOUGHT, END_THOUGHT, BEGIN_SOLUTION, END_SOLUTION)

# One line per format, used in error messages so a user sees what a row should look like.
EXPECTED_FORMATS = (
    "OpenThoughts {system, conversations:[{from, value}]}; "
    "OpenThoughts metadata {problem, deepseek_reasoning, deepseek_solution}; "
    "{prompt, response} with <think>...</think>; "
    "GSM8K {question, answer ending in '#### n'}; "
    "{messages:[{role, content}]} with <think>...</think>"
)

# A short ground-truth solution is taken verbatim; longer ones are worked solutions, not answers.
_SHORT_GROUND_TRUTH_CHARS = 40

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
# "answer is" up to the end of the sentence: a period followed by whitespace/end, a newline or the end.
_ANSWER_IS = re.compile(r"answer is\s*:?\s*(.+?)(?:\.(?=\s|$)|\n|$)", re.IGNORECASE)
_ANSWER_IS_START = re.compile(r"answer is", re.IGNORECASE)
_GSM8K_CALCULATOR_NOTE = re.compile(r"<<[^<>]*>>")
GSM8K_MARK = "####"  # GSM8K's solutions end in "#### n"
GSM8K_FINAL_RE = re.compile(r"####\s*([^\n]+)")  # a "#### n" line (also in a model's answer): n in group 1


def gsm8k_final(text: str) -> str:
    """The final answer of a GSM8K-style solution (after its last ``####``); the whole text, stripped, without one."""
    return text.rpartition(GSM8K_MARK)[2].strip()

_ROLE_ALIASES = {"human": "user", "gpt": "assistant"}


def final_answer_from_solution(text: str) -> str | None:
    """The short final answer in a solution: the last \\boxed{…}, else the last "the answer is X"."""
    boxed = _last_boxed(text)
    if boxed:
        return boxed
    # Match from the last "answer is" only: a lazy match from an earlier one would swallow it.
    starts = [m.start() for m in _ANSWER_IS_START.finditer(text)]
    if starts:
        match = _ANSWER_IS.match(text, starts[-1])
        if match:
            return _clean_answer(match.group(1)) or None
    return None


def _last_boxed(text: str) -> str | None:
    starts = [m.end() for m in _BOXED.finditer(text)]
    for start in reversed(starts):
        depth = 1
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    content = text[start:i].strip()
                    if content:
                        return content
                    break
    return None


def _clean_answer(text: str) -> str:
    return text.strip().strip("*$ ").rstrip(".").strip()


def split_reasoning(text: str) -> tuple[str, str]:
    """Split an assistant reply into (reasoning, answer) using OpenThoughts markers or <think> tags."""
    if any(marker in text for marker in _OPENTHOUGHTS_MARKERS):
        reasoning, answer = _split_openthoughts(text)
    elif THINK_OPEN in text or THINK_CLOSE in text:
        reasoning, answer = _split_think_tags(text)
    else:
        raise BadRow("no_reasoning", "reply has neither <think>...</think> nor OpenThoughts markers")
    if not reasoning:
        raise BadRow("empty_reasoning")
    if not answer:
        raise BadRow("empty_answer")
    return reasoning, answer


def _split_openthoughts(text: str) -> tuple[str, str]:
    counts = {marker: text.count(marker) for marker in _OPENTHOUGHTS_MARKERS}
    if (
        counts[BEGIN_THOUGHT] != 1
        or counts[END_THOUGHT] != 1
        or counts[BEGIN_SOLUTION] != counts[END_SOLUTION]
        or counts[BEGIN_SOLUTION] > 1
    ):
        raise BadRow("unbalanced_thought_markers", str(counts))
    begin, end = text.index(BEGIN_THOUGHT), text.index(END_THOUGHT)
    if end < begin:
        raise BadRow("unbalanced_thought_markers", "end_of_thought before begin_of_thought")
    reasoning = text[begin + len(BEGIN_THOUGHT) : end]
    rest = text[end + len(END_THOUGHT) :]
    if counts[BEGIN_SOLUTION]:
        sol_begin, sol_end = rest.find(BEGIN_SOLUTION), rest.find(END_SOLUTION)
        if sol_begin < 0 or sol_end < sol_begin:
            raise BadRow("unbalanced_thought_markers", "solution markers out of order")
        answer = rest[sol_begin + len(BEGIN_SOLUTION) : sol_end]
    else:
        answer = rest
    return reasoning.strip(), answer.strip()


def _split_think_tags(text: str) -> tuple[str, str]:
    opens, closes = text.count(THINK_OPEN), text.count(THINK_CLOSE)
    if closes != 1 or opens > 1:
        raise BadRow("unbalanced_thought_markers", f"{opens} <think> and {closes} </think>")
    if text.find(THINK_OPEN) > text.index(THINK_CLOSE):
        raise BadRow("unbalanced_thought_markers", "</think> before <think>")
    # A missing opening tag is accepted: R1-style chat templates put <think> in the prompt,
    # so generated replies often start inside the thought.
    split = Split.of(text)
    return split.thought, split.answer


def to_target_text(ex: ReasoningExample) -> str:
    """The assistant text the model is trained to produce."""
    return with_thought(ex.reasoning, ex.answer)


def detect_format(row: Mapping[str, Any]) -> str:
    """The name of the format a row is in, from its keys; raises BadRow("unknown_format")."""
    if "conversations" in row:
        return "openthoughts"
    if "messages" in row:
        return "messages"
    if "deepseek_reasoning" in row or "deepseek_solution" in row:
        return "openthoughts_metadata"
    if "response" in row:
        return "prompt_response"
    if "question" in row and "answer" in row:
        return "gsm8k"
    raise BadRow("unknown_format", f"keys {sorted(map(str, row))[:8]}")


def normalize_row(row: dict[str, Any]) -> ReasoningExample:
    """Turn one row of any supported format into a ReasoningExample; raises BadRow."""
    if not isinstance(row, Mapping):
        raise BadRow("wrong_type", f"row is {type(row).__name__}, not an object")
    ex = _PARSERS[detect_format(row)](row)
    if not ex.prompt:
        raise BadRow("empty_prompt")
    ground_truth = row.get("ground_truth")
    if ground_truth is not None:
        if isinstance(ground_truth, bool) or not isinstance(ground_truth, (str, int, float)):
            raise BadRow("wrong_type", "ground_truth is not a string or number")
        ex = replace(ex, ground_truth=str(ground_truth).strip() or ex.ground_truth)
    domain = _optional_str(row, "domain")
    if domain:
        ex = replace(ex, domain=domain)
    return ex


def _require_str(row: Mapping[str, Any], key: str) -> str:
    if key not in row or row[key] is None:
        raise BadRow("missing_field", key)
    value = row[key]
    if not isinstance(value, str):
        raise BadRow("wrong_type", f"{key} is {type(value).__name__}, not str")
    return value.strip()


def _optional_str(row: Mapping[str, Any], key: str) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRow("wrong_type", f"{key} is {type(value).__name__}, not str")
    return value.strip() or None


def _parse_openthoughts(row: Mapping[str, Any]) -> ReasoningExample:
    turns = row["conversations"]
    if not isinstance(turns, list):
        raise BadRow("wrong_type", "conversations is not a list")
    system = _optional_str(row, "system")
    prompt: str | None = None
    reply: str | None = None
    for turn in turns:
        if not isinstance(turn, Mapping):
            raise BadRow("wrong_type", "conversation turn is not an object")
        role = _require_str(turn, "from")
        role = _ROLE_ALIASES.get(role, role)
        value = _require_str(turn, "value")
        if role == "system" and system is None:
            system = value or None
        elif role == "user" and prompt is None:
            prompt = value
        elif role == "assistant" and prompt is not None and reply is None:
            reply = value
    return _from_turns(prompt, reply, system, "conversations")


def _parse_messages(row: Mapping[str, Any]) -> ReasoningExample:
    messages = row["messages"]
    if not isinstance(messages, list):
        raise BadRow("wrong_type", "messages is not a list")
    system: str | None = None
    prompt: str | None = None
    reply: str | None = None
    for message in messages:
        if not isinstance(message, Mapping):
            raise BadRow("wrong_type", "message is not an object")
        role = _require_str(message, "role")
        content = _require_str(message, "content")
        if role == "system" and system is None:
            system = content or None
        elif role == "user" and prompt is None:
            prompt = content
        elif role == "assistant" and prompt is not None and reply is None:
            reply = content
    return _from_turns(prompt, reply, system, "messages")


def _from_turns(prompt: str | None, reply: str | None, system: str | None, field: str) -> ReasoningExample:
    # Only the first user turn and the reply to it are used: the tool trains single-turn reasoning.
    if prompt is None:
        raise BadRow("missing_field", f"{field}: no user turn")
    if reply is None:
        raise BadRow("missing_field", f"{field}: no assistant turn after the user turn")
    reasoning, answer = split_reasoning(reply)
    return ReasoningExample(
        prompt=prompt,
        reasoning=reasoning,
        answer=answer,
        system=system,
        ground_truth=final_answer_from_solution(answer),
    )


def _parse_metadata(row: Mapping[str, Any]) -> ReasoningExample:
    prompt = _require_str(row, "problem")
    # Some exports keep the tags around the reasoning; they must not end up nested in the target.
    reasoning = _require_str(row, "deepseek_reasoning").removeprefix("<think>").removesuffix("</think>").strip()
    answer = _require_str(row, "deepseek_solution")
    reference = _optional_str(row, "ground_truth_solution")
    if not reasoning:
        raise BadRow("empty_reasoning")
    if not answer:
        raise BadRow("empty_answer")
    ground_truth = None
    if reference:
        ground_truth = _last_boxed(reference) or (reference if len(reference) <= _SHORT_GROUND_TRUTH_CHARS else None)
    if ground_truth is None:
        ground_truth = final_answer_from_solution(answer)
    return ReasoningExample(
        prompt=prompt,
        reasoning=reasoning,
        answer=answer,
        ground_truth=ground_truth,
        domain=_optional_str(row, "domain"),
    )


def _parse_prompt_response(row: Mapping[str, Any]) -> ReasoningExample:
    prompt = _require_str(row, "prompt")
    reasoning, answer = split_reasoning(_require_str(row, "response"))
    return ReasoningExample(
        prompt=prompt,
        reasoning=reasoning,
        answer=answer,
        system=_optional_str(row, "system"),
        ground_truth=final_answer_from_solution(answer),
    )


def _parse_gsm8k(row: Mapping[str, Any]) -> ReasoningExample:
    prompt = _require_str(row, "question")
    solution = _require_str(row, "answer")
    if GSM8K_MARK not in solution:
        raise BadRow("missing_final_answer", "GSM8K answer has no '#### n' line")
    steps = solution.rpartition(GSM8K_MARK)[0]
    final = gsm8k_final(solution).replace(",", "")
    if not final:
        raise BadRow("empty_answer")
    lines = (line.strip() for line in _GSM8K_CALCULATOR_NOTE.sub("", steps).splitlines())
    reasoning = "\n".join(line for line in lines if line)
    if not reasoning:
        raise BadRow("empty_reasoning")
    return ReasoningExample(
        prompt=prompt,
        reasoning=reasoning,
        answer=f"The final answer is $\\boxed{{{final}}}$.",
        ground_truth=final,
    )


_PARSERS: dict[str, Callable[[Mapping[str, Any]], ReasoningExample]] = {
    "openthoughts": _parse_openthoughts,
    "openthoughts_metadata": _parse_metadata,
    "messages": _parse_messages,
    "prompt_response": _parse_prompt_response,
    "gsm8k": _parse_gsm8k,
}
