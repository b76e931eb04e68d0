"""Final-answer extraction and comparison for math-style model responses.

A response is ``<think>reasoning</think> answer`` (SFT model) or free text (base model).
Answers are returned as normalized strings so they can be stored in JSON and compared
with :func:`answers_match`, which treats ``18``, ``18.0`` and ``$18`` as equal.
"""

from __future__ import annotations

import math
import re

from distill.data.formats import GSM8K_FINAL_RE
from distill.reasoning import Split

# A plain number: optional sign, digits with optional thousands groups, optional decimals.
_NUM = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+"
_LEADING_NUMBER_RE = re.compile(
    rf"(?P<whole>[-+]?\d+)\s+(?P<mixed_num>\d+)\s*/\s*(?P<mixed_den>\d+)"  # mixed: 2 3/4
    rf"|(?P<num>{_NUM})(?:\s*/\s*(?P<den>{_NUM}))?"
)
# What may follow a number and still count as "just that number": unit words and light
# punctuation ("18 apples.", "5 km/h"), but no further digits or operators ("3 + x").
_UNIT_TAIL_RE = re.compile(r"[\sA-Za-z.,'’/°-]*")
# Numbers inside running text, for the last-number fallback and phrase answers. The
# look-behind keeps "5-3" from yielding "-3" and "x2" from yielding "2".
_NUMBER_IN_TEXT_RE = re.compile(
    r"-?\\[dt]?frac\{[^{}]+\}\{[^{}]+\}"
    r"|(?<![\w.])-?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?"
    r"|(?<![\w.])-?\.\d+"
)
# "2\frac{1}{2}" is the mixed number 2 1/2, not 21/2: keep a space between the parts.
_DIGIT_BEFORE_FRAC_RE = re.compile(r"(?<=\d)(?=\\[dt]?frac\{)")
_LATEX_FRAC_RE = re.compile(r"\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}")
_LATEX_TEXT_RE = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_ANSWER_PHRASE_RE = re.compile(
    r"(?:\bthe\s+(?:final\s+)?answer\s+is\b|\bfinal\s+answer\**\s*(?:is\b|:)|^[ \t*#]*answer\**\s*:)[\s:*]*",
    re.IGNORECASE | re.MULTILINE,
)
_BRACE_TOKEN_RE = re.compile(r"\\boxed\{|[{}]")
# Where a phrase answer ends: sentence punctuation followed by a space or the end, ";",
# a ", " clause break (but not the comma inside 1,234) or a newline.
_PHRASE_END_RE = re.compile(r"[.!?](?=\s|$)|;|,(?=\s)|\n")
_MAX_PHRASE_WORDS = 5


def _clean_math(text: str) -> str:
    """Strip LaTeX/markdown decoration that does not change a number's value."""
    s = text.strip().replace("−", "-")
    s = _LATEX_TEXT_RE.sub(r" \1", s)
    s = _DIGIT_BEFORE_FRAC_RE.sub(" ", s)
    s = _LATEX_FRAC_RE.sub(r"\1/\2", s)
    for token in ("\\(", "\\)", "\\[", "\\]", "\\$", "\\%", "\\!", "\\,", "$", "%", "**"):
        s = s.replace(token, "")
    return s.strip()


def _to_float(token: str) -> float:
    return float(token.replace(",", ""))


def normalize_number(text: str | None) -> float | None:
    """The value of ``text`` when it is a number, optionally followed by unit words.

    Accepts ``18``, ``18.0``, ``$18``, ``1,234``, ``18%`` (as 18), ``-3``, ``3/4``,
    ``2 3/4``, ``\\frac{3}{4}`` and ``18 apples``; returns None for anything else,
    including a zero denominator.
    """
    if text is None:
        return None
    s = _clean_math(text)
    match = _LEADING_NUMBER_RE.match(s)
    if match is None or not _UNIT_TAIL_RE.fullmatch(s[match.end():]):
        return None
    try:
        if match.group("whole") is not None:
            sign = -1.0 if match.group("whole").startswith("-") else 1.0
            frac = _to_float(match.group("mixed_num")) / _to_float(match.group("mixed_den"))
            return sign * (abs(_to_float(match.group("whole"))) + frac)
        value = _to_float(match.group("num"))
        if match.group("den") is not None:
            value /= _to_float(match.group("den"))
        return value
    except ZeroDivisionError:
        return None


def format_number(value: float) -> str:
    """Canonical text for a number: ``18`` rather than ``18.0``, at most 10 significant digits."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.10g}"


def _clean_text_answer(text: str) -> str | None:
    s = _clean_math(text).rstrip(".").strip()
    s = " ".join(s.split())
    return s or None


def _exact_answer(raw: str) -> str | None:
    """A boxed answer: its number when it is one, else its cleaned text."""
    s = raw.strip()
    if "=" in s and s.rsplit("=", 1)[1].strip():
        s = s.rsplit("=", 1)[1]  # "x = 5" -> "5"
    value = normalize_number(s)
    return format_number(value) if value is not None else _clean_text_answer(s)


def _phrase_answer(rest: str) -> str | None:
    """The answer in the text after "the answer is": a number, or a short expression."""
    end = _PHRASE_END_RE.search(rest)
    phrase = (rest[: end.start()] if end else rest).strip()
    if "=" in phrase and phrase.rsplit("=", 1)[1].strip():
        phrase = phrase.rsplit("=", 1)[1].strip()
    value = normalize_number(phrase)
    if value is None:
        # "approximately 42 apples": the number wins over the words around it.
        found = _NUMBER_IN_TEXT_RE.search(phrase)
        value = normalize_number(found.group(0)) if found else None
    if value is not None:
        return format_number(value)
    if len(phrase.split()) <= _MAX_PHRASE_WORDS:
        return _clean_text_answer(phrase)
    return None


def _boxed_contents(text: str) -> list[str]:
    """Contents of every closed ``\\boxed{...}``, honouring nested braces, in order of start.

    One pass over the braces with a stack, so a truncated response full of unclosed
    ``\\boxed{`` stays linear.
    """
    found: list[tuple[int, str]] = []
    stack: list[int | None] = []  # content start of a \boxed{ brace, None for a plain "{"
    for token in _BRACE_TOKEN_RE.finditer(text):
        if token.group() == "}":
            if stack and (start := stack.pop()) is not None:
                found.append((start, text[start : token.start()]))
        else:
            stack.append(token.end() if token.group() != "{" else None)
    return [content for _, content in sorted(found)]


def _answer_in(text: str) -> str | None:
    for content in reversed(_boxed_contents(text)):
        if (answer := _exact_answer(content)) is not None:
            return answer
    for match in reversed(list(GSM8K_FINAL_RE.finditer(text))):
        if (answer := _phrase_answer(match.group(1))) is not None:
            return answer
    for match in reversed(list(_ANSWER_PHRASE_RE.finditer(text))):
        if (answer := _phrase_answer(text[match.end():])) is not None:
            return answer
    for match in reversed(list(_NUMBER_IN_TEXT_RE.finditer(text))):
        if (value := normalize_number(match.group(0))) is not None:
            return format_number(value)
    return None


def extract_answer(response: str) -> str | None:
    """The final answer of a model response, normalized (``"18"``, ``"0.75"``, ``"B"``).

    The text after the last ``</think>`` is searched first, so numbers in the reasoning
    cannot outvote the stated answer; the whole response is the fallback. In each, the
    priority is: last ``\\boxed{}``, last ``#### n``, last "the answer is …" /
    "final answer: …", last number.
    """
    split = Split.of(response)
    if split.closed:
        answer = _answer_in(split.answer)
        if answer is not None:
            return answer
    return _answer_in(response)


def answers_match(predicted: str | None, ground_truth: str | None) -> bool:
    """Numeric equality (abs. tolerance 1e-6, rel. 1e-9) when both are numbers, else text equality
    ignoring case, whitespace, ``$`` and a trailing period. None never matches."""
    if predicted is None or ground_truth is None:
        return False
    a, b = normalize_number(predicted), normalize_number(ground_truth)
    if a is not None and b is not None:
        # rel_tol stays above format_number's 10-significant-digit rounding (<= 5e-10),
        # yet tight enough that 1000000000 and 1000001000 differ.
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)

    def canon(text: str) -> str:
        return "".join(text.replace("$", "").split()).rstrip(".").lower()

    return canon(predicted) == canon(ground_truth)
