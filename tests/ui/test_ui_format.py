"""Formatting helpers and form logic of the dashboard (pure functions, no browser)."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta

import pytest

from ui.format import (
    cli_command,
    config_diff,
    curl_command,
    failure_html,
    fmt_duration,
    fmt_value,
    format_log_html,
    metrics_frame,
    metrics_table_html,
    progress_html,
    response_html,
    runs_frame,
    samples_html,
    split_think,
)
from ui.pages.common import local_schema, parse_schema


def test_split_think_parts() -> None:
    assert split_think("<think>\na\nb\n</think>\nThe answer is 7.") == ("a\nb", "The answer is 7.", True)
    assert split_think("<think>still going") == ("still going", "", False)
    assert split_think("reasoning only</think> 42") == ("reasoning only", "42", True)
    assert split_think("plain 42") == (None, "plain 42", True)


def test_response_html_escapes_and_marks() -> None:
    html = response_html("<think>x < y & <b>bold</b></think><script>alert(1)</script> 7",
                         {"answer": "7", "correct": True, "quality_score": 0.8, "num_steps": 2})
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;bold" in html
    assert "<details" in html and "Reasoning (" in html
    assert "✓" in html and "ds-good" in html
    wrong = response_html("12", {"answer": "12", "correct": False})
    assert "✗" in wrong and "ds-bad" in wrong
    streaming = response_html("<think>hmm", streaming=True)
    assert "<details class=\"ds-think\" open>" in streaming and "thinking…" in streaming


def test_metrics_table_colors_improvements_and_regressions() -> None:
    summary = {"base": {"n": 4, "accuracy": 0.25, "n_correct": 1, "n_with_ground_truth": 4, "avg_generation_time_s": 1.0},
               "sft": {"n": 4, "accuracy": 0.75, "n_correct": 3, "n_with_ground_truth": 4, "avg_generation_time_s": 2.0}}
    html = metrics_table_html(summary, {"accuracy": 0.5, "avg_generation_time_s": 1.0})
    acc_row = html.split("Accuracy")[1].split("</tr>")[0]
    assert "25.0% (1/4)" in acc_row and "75.0% (3/4)" in acc_row and "ds-good" in acc_row and "+50.0 pp" in acc_row
    time_row = html.split("Avg generation time")[1].split("</tr>")[0]
    assert "ds-bad" in time_row  # slower is worse
    assert "No evaluation" in metrics_table_html(None)


def test_fmt_value_units() -> None:
    assert fmt_value("accuracy", 0.5) == "50.0%"
    assert fmt_value("accuracy", 0.125, signed=True) == "+12.5 pp"
    assert fmt_value("pct_with_think_tags", -20.0, signed=True) == "-20.0 pp"
    assert fmt_value("avg_quality_score", None) == "n/a"


def test_fmt_duration() -> None:
    assert [fmt_duration(x) for x in (None, 5, 65, 3725, 200_000)] == ["—", "5s", "1m 05s", "1h 02m", "2d 07h"]


def test_progress_and_failure() -> None:
    now = datetime.now(UTC)
    run = {"status": "running", "stage": "train", "progress": 0.42, "eta_s": 90,
           "started_at": (now - timedelta(seconds=30)).isoformat()}
    html = progress_html(run, now)
    assert "42%" in html and "ETA 1m 30s" in html and "width:42.0%" in html and "stage: <b>train</b>" in html
    assert failure_html(run) == ""
    failed = {"status": "failed", "error": "OSError: no <model>"}
    fh = failure_html(failed, [{"ts": "2024-01-01T10:00:00Z", "level": "ERROR", "message": "boom"}])
    assert "Run failed: OSError: no &lt;model&gt;" in fh and "ERROR boom" in fh


def test_log_html_keeps_the_tail_and_says_what_is_hidden() -> None:
    lines = [{"seq": i, "ts": "2024-01-01T10:00:00Z", "level": "INFO", "message": f"<line {i}>"} for i in range(4601, 5001)]
    html = format_log_html(lines, 5000, 400, ["[end of log: run succeeded]"])
    assert "4,600 earlier lines not shown" in html and "&lt;line 5000&gt;" in html and "<line" not in html
    assert html.count('class="ds-log-line') == 400 and "end of log" in html
    err = format_log_html([{"seq": 1, "level": "ERROR", "message": "bad"}], 1, 400)
    assert "ds-log-err" in err


def test_runs_frame_columns() -> None:
    run = {"id": 3, "name": "demo", "status": "succeeded", "progress": 1.0, "config": {"model": "tiny-random",
           "dataset": "builtin:reasoning"}, "started_at": "2024-01-01T10:00:00Z", "finished_at": "2024-01-01T10:01:05Z",
           "summary": {"sft": {"accuracy": 0.5}, "deltas": {"accuracy": 0.25}}}
    df = runs_frame([run])
    row = df.iloc[0].to_dict()
    assert row["ID"] == 3 and row["Status"] == "✔ succeeded" and row["Progress"] == "100%"
    assert row["Duration"] == "1m 05s" and row["SFT accuracy"] == "50.0%" and row["Δ accuracy"] == "+25.0 pp"


def test_metrics_frame_is_long_and_typed() -> None:
    df = metrics_frame([{"step": 1, "loss": 2.0, "ce": 1.9, "kl": None}, {"step": 2, "eval_loss": 1.5}])
    assert set(df["series"]) == {"loss", "ce", "eval_loss"}
    assert str(df["step"].dtype) == "float64" and str(df["value"].dtype) == "float64"
    empty = metrics_frame([], ("loss",))
    assert str(empty["value"].dtype) == "float64"  # else the chart gets a categorical axis


def test_commands_from_the_form() -> None:
    body = {"preset": "seed", "model": "tiny-random", "epochs": 1.0, "use_lora": False, "name": "my run"}
    cli = cli_command(body)
    assert cli == "distill --preset seed --model tiny-random --epochs 1 --no-use_lora --name 'my run'"
    assert shlex.split(cli)[-1] == "my run"
    curl = curl_command("http://localhost:8000", body, with_token=True)
    assert "http://localhost:8000/api/v1/runs" in curl and "Authorization: Bearer $DISTILL_API_TOKEN" in curl
    data = shlex.split(curl.replace("\\\n", " "))[-1]
    import json

    assert json.loads(data) == body


def test_config_diff() -> None:
    base = {"epochs": 3, "learning_rate": 0.001, "max_samples": None, "name": None}
    assert config_diff({"epochs": 3.0, "learning_rate": 2e-5, "max_samples": None, "name": None}, base) == {"learning_rate": 2e-5}


def test_samples_side_by_side() -> None:
    samples = [{"prompt": "2+2?", "ground_truth": "4", "set": "heldout",
                "base": {"response": "5", "answer": "5", "correct": False},
                "sft": {"response": "<think>2+2=4</think> 4", "answer": "4", "correct": True}}]
    html = samples_html(samples)
    assert html.count('class="ds-col"') == 2 and "ground truth: <b>4</b>" in html
    assert "base ✗" in html and "SFT ✓" in html


@pytest.mark.parametrize("source", ["local"])
def test_schema_groups_and_kinds(source: str) -> None:
    schema = local_schema()
    assert schema is not None
    groups = schema.by_group()
    assert list(groups)[:7] == ["run", "model", "data", "training", "lora", "kl", "evaluation"]
    kinds = {f.name: (f.kind, f.nullable) for f in schema.fields}
    assert kinds["epochs"] == ("float", False) and kinds["max_samples"] == ("int", True)
    assert kinds["use_lora"] == ("bool", False) and kinds["mode"][0] == "enum"
    assert "preset" not in kinds  # the preset has its own picker
    assert all(f.description for f in schema.fields)
    # The API's schema (same code) parses the same way.
    from distill.config import RunConfig

    assert parse_schema(RunConfig.model_json_schema()).names == schema.names
