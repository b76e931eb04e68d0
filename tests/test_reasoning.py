"""Thought and answer apart: whole responses (Split), and streamed deltas (StreamSplitter) whose tags straddle two
deltas; the two agree."""

from __future__ import annotations

import random

import pytest

from distill.reasoning import Split, StreamSplitter, with_thought


@pytest.mark.parametrize("text, thought, answer, opened, closed", [
    ("<think>\na\nb\n</think>\nThe answer is 7.", "a\nb", "The answer is 7.", True, True),
    ("<think>still going", "still going", "", True, False),  # cut off: an open thought, no answer
    ("reasoning only</think> 42", "reasoning only", "42", True, True),  # a lone </think>: the prompt opened it
    ("plain 42", "", "plain 42", False, False),  # no tags: no thought, all answer
    ("<think>a</think> b </think>\n5", "a", "b </think>\n5", True, True),  # the first </think> ends the thought
    ("<think>a</think>b<think>c</think>d", "a", "b<think>c</think>d", True, True),  # no second thought
    ("Sure. <think>t</think> 9", "t", "Sure.  9", True, True),  # said before the thought: answer
    ("", "", "", False, False),
])
def test_split_rule(text, thought, answer, opened, closed):
    s = Split.of(text)
    assert (s.thought, s.answer, s.opened, s.closed) == (thought, answer, opened, closed)
    assert s.in_thought is (opened and not closed)


def test_split_when_the_prompt_opened_the_thought():
    assert Split.of("so 4\n</think>\n\n4", in_thought=True) == Split("so 4", "4", True, True)
    assert Split.of("still thinking", in_thought=True) == Split("still thinking", "", True, False)
    assert Split.of("still thinking", in_thought=True).in_thought


def test_api_fields_carry_the_one_meaning_of_closed():
    assert Split.of("<think>a</think> b").api_fields() == {"thinking": "a", "answer_part": "b", "thinking_closed": True}
    # No thought: nothing closed (the same value as diagnostics' and the metrics' think_closed).
    assert Split.of("no tags").api_fields() == {"thinking": None, "answer_part": "no tags", "thinking_closed": False}
    assert Split.of("<think> cut").api_fields() == {"thinking": "cut", "answer_part": "", "thinking_closed": False}


def test_with_thought_round_trips_through_split():
    for thought, answer, closed in (("a\nb", "7", True), ("cut", "", False)):
        s = Split.of(with_thought(thought, answer, closed))
        assert (s.thought, s.answer, s.closed) == (thought, answer, closed)
    assert Split.of(with_thought(None, "just 7")) == Split("", "just 7", False, False)


def _streamed(deltas: list[str], in_thought: bool = False) -> tuple[dict[str, str], StreamSplitter]:
    sp = StreamSplitter(in_thought=in_thought)
    out = [x for d in deltas for x in sp.feed(d)] + sp.flush()
    assert all(t for _, t in out)  # no empty deltas
    return {part: "".join(t for p, t in out if p == part) for part in ("thinking", "answer")}, sp


@pytest.mark.parametrize("deltas", [
    ["<think>\nSo 2+2=4.\n</think>\n\nThe answer is 4."],
    ["<th", "ink>\nSo 2", "+2=4.\n</", "think>\n\nThe answer", " is 4."],
    list("<think>\nSo 2+2=4.\n</think>\n\nThe answer is 4."),  # a character at a time
])
def test_stream_splitter_labels_deltas_and_drops_the_tags(deltas):
    joined, sp = _streamed(deltas)
    assert joined == {"thinking": "\nSo 2+2=4.\n", "answer": "\n\nThe answer is 4."}
    assert (sp.opened, sp.closed, sp.in_thought) == (True, True, False)


def test_stream_splitter_keeps_a_lone_angle_bracket_that_is_no_tag():
    sp = StreamSplitter()
    out = sp.feed("a < b") + sp.feed(" and c <") + sp.feed(" d") + sp.flush()
    assert "".join(t for _, t in out) == "a < b and c < d" and {p for p, _ in out} == {"answer"}


def test_stream_splitter_tells_when_the_row_is_inside_a_thought():
    sp = StreamSplitter()
    states = []
    for d in ["Hm ", "<thi", "nk>", "x", "</th", "ink>", " y", "<think>", "z"]:
        sp.feed(d)
        states.append(sp.in_thought)
    # In only once the tag is whole; out at the first </think>, and a later <think> is answer text.
    assert states == [False, False, True, True, True, False, False, False, False]
    assert StreamSplitter(in_thought=True).in_thought


@pytest.mark.parametrize("text, in_thought", [
    ("<think>\nSo 2+2=4.\n</think>\n\nThe answer is 4.", False),
    ("<think>a</think> b </think>\n5", False),
    ("<think>a</think>b<think>c</think>d", False),
    ("Sure. <think>t</think> 9", False),
    ("<think>cut off mid <thi", False),
    ("no tags at all, 3 < 4 and 5 > 2", False),
    ("thought the prompt opened\n</think>\n\n42", True),
])
def test_stream_splitter_agrees_with_split_on_any_chunking(text, in_thought):
    whole = Split.of(text, in_thought)
    rng = random.Random(7)
    for _ in range(25):
        cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(1, 8))))
        deltas = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        joined, sp = _streamed(deltas, in_thought)
        assert joined["thinking"].strip() == whole.thought
        assert joined["answer"].strip() == whole.answer
        assert (sp.opened, sp.closed) == (whole.opened, whole.closed)
