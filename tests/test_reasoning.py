"""Thinking and answer apart: whole responses, and streamed deltas whose tags straddle two deltas."""

from __future__ import annotations

import pytest

from distill.reasoning import StreamSplitter, parts, split_response


@pytest.mark.parametrize("text, thinking, answer, opened, closed", [
    ("<think>\na\nb\n</think>\nThe answer is 7.", "a\nb", "The answer is 7.", True, True),
    ("<think>still going", "still going", "", True, False),  # cut off: no answer
    ("reasoning only</think> 42", "reasoning only", "42", False, True),  # the prompt opened the thought
    ("plain 42", "", "plain 42", False, False),
    ("<think>I write </think> here</think>\n5", "I write </think> here", "5", True, True),  # the last </think> ends it
])
def test_split_response(text, thinking, answer, opened, closed):
    s = split_response(text)
    assert (s.thinking, s.answer, s.opened, s.closed) == (thinking, answer, opened, closed)


def test_parts_as_the_api_shows_them():
    assert parts("<think>a</think> b") == {"thinking": "a", "answer_part": "b", "thinking_closed": True}
    assert parts("no tags") == {"thinking": None, "answer_part": "no tags", "thinking_closed": True}
    assert parts("<think> cut") == {"thinking": "cut", "answer_part": "", "thinking_closed": False}


@pytest.mark.parametrize("deltas", [
    ["<think>\nSo 2+2=4.\n</think>\n\nThe answer is 4."],
    ["<th", "ink>\nSo 2", "+2=4.\n</", "think>\n\nThe answer", " is 4."],
    list("<think>\nSo 2+2=4.\n</think>\n\nThe answer is 4."),  # a character at a time
])
def test_stream_splitter_labels_deltas_and_drops_the_tags(deltas):
    sp = StreamSplitter()
    out = [x for d in deltas for x in sp.feed(d)] + sp.flush()
    joined = {part: "".join(t for p, t in out if p == part) for part in ("thinking", "answer")}
    assert joined == {"thinking": "\nSo 2+2=4.\n", "answer": "\n\nThe answer is 4."}
    assert all(t for _, t in out)  # no empty deltas


def test_stream_splitter_keeps_a_lone_angle_bracket_that_is_no_tag():
    sp = StreamSplitter()
    out = sp.feed("a < b") + sp.feed(" and c <") + sp.feed(" d") + sp.flush()
    assert "".join(t for _, t in out) == "a < b and c < d" and {p for p, _ in out} == {"answer"}
