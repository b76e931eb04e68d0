import json
import socket
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill.data.prepare import (
    data_report,
    ensure_chat_template,
    split_train_val,
    to_prompt_completion,
    token_length_stats,
)
from distill.data.schema import DataFormatError, DataSourceError, ReasoningExample
from distill.data.sources import DataStats, iter_rows, load_examples


def render_chatml(messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
    """ChatML written out by hand: what ensure_chat_template's template must render."""
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + "<|im_start|>assistant\n" if add_generation_prompt else text


GOOD = {"prompt": "What is 2 + 3?", "response": "<think>2 + 3 = 5</think>The answer is 5.", "domain": "math"}
GSM = {"question": "What is 4 * 5?", "answer": "4 * 5 = <<4*5=20>>20\n#### 20"}
OPENTHOUGHTS = {
    "system": "sys",
    "conversations": [
        {"from": "user", "value": "What is 9 - 4?"},
        {
            "from": "assistant",
            "value": "<|begin_of_thought|>\n\n9 - 4 = 5\n\n<|end_of_thought|>\n\n"
            "<|begin_of_solution|>\n\nThe answer is 5.\n\n<|end_of_solution|>",
        },
    ],
}
BAD_BY_REASON = {
    "unknown_format": {"foo": 1},
    "missing_field": {"response": "<think>a</think>b"},
    "wrong_type": {"conversations": "not a list"},
    "empty_answer": {"prompt": "q", "response": "<think>a</think>  "},
    "empty_prompt": {"prompt": " ", "response": "<think>a</think>b"},
    "no_reasoning": {"prompt": "q", "response": "b"},
    "unbalanced_thought_markers": {"prompt": "q", "response": "<|begin_of_thought|>a"},
    "missing_final_answer": {"question": "q", "answer": "no hashes"},
}


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# --- load_examples ------------------------------------------------------------------------------


def test_every_bad_row_reason_is_counted(tmp_path):
    rows = [GOOD, *BAD_BY_REASON.values(), GSM, BAD_BY_REASON["no_reasoning"], OPENTHOUGHTS]
    examples, stats = load_examples(str(write_jsonl(tmp_path / "mixed.jsonl", rows)), None)
    assert [ex.prompt for ex in examples] == ["What is 2 + 3?", "What is 4 * 5?", "What is 9 - 4?"]
    assert (stats.rows_read, stats.rows_kept) == (12, 3)
    assert stats.skipped == {reason: 1 for reason in BAD_BY_REASON} | {"no_reasoning": 2}
    assert stats.domains == {"math": 1, "unknown": 2}


def test_max_samples_counts_kept_rows(tmp_path):
    rows = [BAD_BY_REASON["no_reasoning"], GOOD, BAD_BY_REASON["empty_answer"], GSM, OPENTHOUGHTS, GOOD]
    examples, stats = load_examples(str(write_jsonl(tmp_path / "d.jsonl", rows)), 2)
    assert len(examples) == 2 and (stats.rows_read, stats.rows_kept) == (4, 2)
    assert stats.skipped == {"no_reasoning": 1, "empty_answer": 1}
    with pytest.raises(ValueError):
        load_examples(str(tmp_path / "d.jsonl"), 0)


def test_file_of_unknown_rows_is_a_format_error(tmp_path):
    path = write_jsonl(tmp_path / "foo.jsonl", [{"foo": 1}] * 3)
    with pytest.raises(DataFormatError) as info:
        load_examples(str(path), None)
    message = str(info.value)
    assert f"{path}:1:" in message and "foo" in message and "GSM8K" in message and "\n" not in message


def test_first_20_unknown_rows_fail_even_if_good_rows_follow(tmp_path):
    path = write_jsonl(tmp_path / "wrong.jsonl", [{"text": "x"}] * 20 + [GOOD] * 5)
    with pytest.raises(DataFormatError, match=r"wrong\.jsonl:1: rows match no supported format"):
        load_examples(str(path), None)
    # A few odd rows among good ones are just skipped.
    examples, stats = load_examples(str(write_jsonl(tmp_path / "ok.jsonl", [{"text": "x"}, GOOD])), None)
    assert len(examples) == 1 and stats.skipped == {"unknown_format": 1}


def test_non_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + "id,prompt,response\n", encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        load_examples(str(path), None)
    assert f"{path}:3: expected one JSON object per line" in str(info.value)
    write_jsonl(path, [GOOD, [1, 2]])
    with pytest.raises(
        DataFormatError, match=r"broken\.jsonl:2: expected one JSON object per line \(got a JSON list\)"
    ):
        list(iter_rows(str(path)))


def test_no_usable_rows_is_a_format_error(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [BAD_BY_REASON["no_reasoning"]] * 3)
    with pytest.raises(
        DataFormatError,
        match=r"no usable rows among 3 read \(skipped: no_reasoning=3\); first problem at .*bad\.jsonl:1",
    ):
        load_examples(str(path), None)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="no rows found"):
        load_examples(str(empty), None)


# --- iter_rows: local files -----------------------------------------------------------------------


def test_json_parquet_and_folder_sources(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([GOOD, GSM]), encoding="utf-8")
    (tmp_path / "b.json").write_text(json.dumps({"data": [OPENTHOUGHTS]}), encoding="utf-8")
    pq.write_table(pa.Table.from_pylist([OPENTHOUGHTS, OPENTHOUGHTS]), tmp_path / "c.parquet")
    write_jsonl(tmp_path / "d.jsonl", [GSM])
    (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
    assert list(iter_rows(str(tmp_path / "a.json"))) == [GOOD, GSM]
    assert list(iter_rows(str(tmp_path / "c.parquet"))) == [OPENTHOUGHTS, OPENTHOUGHTS]
    assert list(iter_rows(str(tmp_path), max_rows=3)) == [GOOD, GSM, OPENTHOUGHTS]
    examples, stats = load_examples(str(tmp_path), None)
    assert [ex.prompt for ex in examples] == ["What is 2 + 3?", "What is 4 * 5?"] + ["What is 9 - 4?"] * 3 + [
        "What is 4 * 5?"
    ]
    assert stats.rows_read == 6 and stats.skipped == {}


def test_json_with_train_key_and_bad_layouts(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"train": [GSM], "test": [GOOD]}), encoding="utf-8")
    assert list(iter_rows(str(path))) == [GSM]
    path.write_text(json.dumps({"columns": []}), encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"t\.json:1: expected a JSON list of objects"):
        list(iter_rows(str(path)))
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"t\.json row 1"):
        list(iter_rows(str(path)))


def test_missing_and_unsupported_local_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        iter_rows(str(tmp_path / "nope.jsonl"))
    with pytest.raises(FileNotFoundError, match="builtin:reasoning"):
        iter_rows("just-a-word")
    csv = tmp_path / "data.csv"
    csv.write_text("prompt,response\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"data\.csv: unsupported file type \.csv"):
        iter_rows(str(csv))
    broken = tmp_path / "x.parquet"
    broken.write_text("not parquet", encoding="utf-8")
    with pytest.raises(DataFormatError, match="not a readable Parquet file"):
        list(iter_rows(str(broken)))
    with pytest.raises(DataSourceError, match="unknown built-in dataset"):
        iter_rows("builtin:nope")


# --- iter_rows: the Hub -------------------------------------------------------------------------


def test_hub_id_offline_fails_fast_with_one_clear_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(DataSourceError) as info:
        list(iter_rows("open-thoughts/OpenThoughts-114k:metadata", max_rows=5))
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert message.startswith(
        "dataset 'open-thoughts/OpenThoughts-114k:metadata' could not be loaded from the Hugging Face Hub"
    )
    assert "builtin:reasoning" in message and "\n" not in message


def test_hub_unreachable_fails_fast(monkeypatch):
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)

    def refuse(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(DataSourceError, match=r"cannot connect to huggingface\.co:443 .*use builtin:reasoning"):
        iter_rows("owner/name")


def test_hub_rows_stream_and_late_failures_become_one_line(monkeypatch):
    import datasets

    from distill.data import sources

    calls = []

    def fake_load_dataset(name, config, split, streaming):
        calls.append((name, config, split, streaming))
        if config == "broken":
            return (row if i < 2 else 1 / 0 for i, row in enumerate([GOOD, GSM, GOOD]))
        return iter([GOOD, GSM, OPENTHOUGHTS])

    monkeypatch.setattr(sources, "unavailable_reason", lambda: None)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert list(iter_rows("owner/name", max_rows=2)) == [GOOD, GSM]
    assert calls == [("owner/name", None, "train", True)]
    with pytest.raises(DataSourceError, match=r"'owner/name:broken' could not be loaded .*division by zero"):
        load_examples("owner/name:broken", None)


# --- prepare ------------------------------------------------------------------------------------

EXAMPLE = ReasoningExample(prompt="What is 2 + 3?", reasoning="2 + 3 = 5", answer="The answer is 5.")


def test_to_prompt_completion_system_choice():
    target = [{"role": "assistant", "content": "<think>\n2 + 3 = 5\n</think>\n\nThe answer is 5."}]
    user = {"role": "user", "content": "What is 2 + 3?"}
    assert to_prompt_completion(EXAMPLE, None) == {"prompt": [user], "completion": target}
    assert to_prompt_completion(EXAMPLE, "default")["prompt"] == [{"role": "system", "content": "default"}, user]
    own = ReasoningExample(prompt=EXAMPLE.prompt, reasoning="2 + 3 = 5", answer="The answer is 5.", system="own")
    assert to_prompt_completion(own, "default")["prompt"][0] == {"role": "system", "content": "own"}


def test_split_train_val():
    items = list(range(100))
    train, val = split_train_val(items, 0.1, seed=3)
    assert (len(train), len(val)) == (90, 10)
    assert sorted(train + val) == items
    assert split_train_val(items, 0.1, seed=3) == (train, val)
    assert split_train_val(items, 0.1, seed=4) != (train, val)
    assert [len(part) for part in split_train_val([1, 2], 0.01, seed=0)] == [1, 1]
    assert split_train_val([1, 2, 3], 0.0, seed=0)[1] == []
    assert split_train_val([1], 0.5, seed=0) == ([1], [])
    with pytest.raises(ValueError):
        split_train_val(items, 1.0, seed=0)


def test_token_length_stats_and_report():
    assert token_length_stats(list(range(1, 101))) == {"p50": 50, "p95": 95, "max": 100, "mean": 50.5}
    assert token_length_stats([7]) == {"p50": 7, "p95": 7, "max": 7, "mean": 7.0}
    assert token_length_stats([]) == {"p50": 0, "p95": 0, "max": 0, "mean": 0.0}
    stats = DataStats(rows_read=12, rows_kept=10, skipped={"no_reasoning": 2}, domains={"math": 10})
    lengths = [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]
    assert data_report(stats, lengths, max_seq_length=512) == {
        "rows_read": 12,
        "rows_kept": 10,
        "skipped": {"no_reasoning": 2},
        "token_length": {"p50": 500, "p95": 1000, "max": 1000, "mean": 550.0},
        "max_seq_length": 512,
        "truncated": 5,
        "domains": {"math": 10},
    }


def test_chatml_rendering_and_template():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]
    expected = "<|im_start|>system\ns<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
    assert render_chatml(messages) == expected
    assert render_chatml(messages, add_generation_prompt=True) == expected + "<|im_start|>assistant\n"

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")), unk_token="[UNK]"
    )
    assert tokenizer.chat_template is None
    assert ensure_chat_template(tokenizer) is True
    assert ensure_chat_template(tokenizer) is False
    assert tokenizer.apply_chat_template(messages, tokenize=False) == expected
    with_prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert with_prompt == render_chatml(messages, add_generation_prompt=True)
    full = messages + [{"role": "assistant", "content": "<think>\nx\n</think>\n\ny"}]
    # TRL's completion-only loss relies on the prompt rendering being a prefix of the full rendering.
    assert tokenizer.apply_chat_template(full, tokenize=False).startswith(with_prompt)
