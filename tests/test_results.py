"""The one evaluation result model (schema 2) and the seed-shaped keys rendered from it; a file written before
schema_version existed (tests/data/evaluation_results_v1.json, written by that code) still reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.evaluation.benchmark import BenchmarkSettings, _record, summarize_suite
from distill.evaluation.results import SCHEMA_VERSION, ResultsError, build, load
from distill.evaluation.suites import Problem, Suite
from distill.generation.engine import Generation

V1 = Path(__file__).parent / "data" / "evaluation_results_v1.json"
SETTINGS = BenchmarkSettings(num_samples=2, max_new_tokens=64)
ANSWERS = {  # problem -> (base answers, sft answers)
    "a0": (["5", "It is 6."],
           ["<think>\n2 + 3 = 5\n</think>\n\nThe answer is \\boxed{5}.", "<think>\nSo 2+3=5.\n</think>\n\n5"]),
    "a1": (["16", "4*4 = 16. So the answer is 16."],
           ["<think>\n4 * 4 = 16\n</think>\n\n16", "<think>\n4 * 4 = 16, then 256"]),
    "a2": (["3", "1"], ["<think>\nFirst 9 - 7 = 2.\n</think>\n\n\\boxed{2}", "<think>\n9-7=2\n</think>\n\n2"]),
    "h0": (["5", "5"], ["<think>\n10 / 2 = 5\n</think>\n\n5", "<think>\n10/2 = 4\n</think>\n\n4"]),
}
SUITES = [Suite("arith", "math", "test", [Problem("a0", "What is 2+3?", "5"), Problem("a1", "What is 4*4?", "16"),
                                          Problem("a2", "What is 9-7?", "2")]),
          Suite("halves", "number", "test", [Problem("h0", "What is 10/2?", "5")])]


def _gen(text: str) -> Generation:
    return Generation(text=text, new_tokens=len(text) // 3, finish_reason="stop", time_s=0.25,
                      think_tokens=len(text) // 4 if "<think>" in text else 0)


def _results(suites: list[Suite]) -> dict:
    """What evaluate() writes for these answers: each problem's record, each suite's block, then build()."""
    records, blocks = {}, {}
    for suite in suites:
        recs = []
        for i, p in enumerate(suite.problems):
            base, sft = ANSWERS[p.id]
            recs.append(_record(suite, i, p, [_gen(t) for pair in zip(base, sft, strict=True) for t in pair], "Think."))
        records[suite.name], blocks[suite.name] = recs, summarize_suite(suite, recs, SETTINGS)
    return build(blocks, records)


def test_accuracy_is_the_pass_at_1_of_the_suite_and_the_test_is_its_test():
    out = _results(SUITES[:1])
    block = out["benchmarks"]["arith"]
    assert out["schema_version"] == SCHEMA_VERSION == 2
    # base right on 3 of 6 answers (5, 16, 16), SFT on 5 of 6 (the cut-off 4*4 thought has no answer)
    assert (block["base"]["pass@1"], block["sft"]["pass@1"]) == (0.5, 0.8333)
    assert (out["summary"]["base"]["accuracy"], out["summary"]["sft"]["accuracy"]) == (0.5, 0.8333)
    assert (out["summary"]["sft"]["n_correct"], out["summary"]["sft"]["n_with_ground_truth"]) == (5, 6)
    assert out["deltas"]["accuracy"] == round(0.8333 - 0.5, 4)
    assert out["accuracy_test"] == {k: block[k] for k in ("test", "p_value", "significant", "delta_ci")}
    assert out["by_set"]["arith"] == out["summary"]


def test_rendering_reads_the_stored_per_answer_metrics():
    out = _results(SUITES)
    first = out["benchmark_samples"]["arith"][0]
    # every per-sample metric was computed once, with the answer, and kept
    assert {k: first["sft"][0][k] for k in ("think_closed", "has_think_tags", "num_steps", "quality_score")} == \
        {"think_closed": True, "has_think_tags": True, "num_steps": 1, "quality_score": 0.51}  # 0.4 + 0.06 + 0.05
    assert first["base"][0]["think_closed"] is False  # no thought: not closed, in the record as in the rendering
    sample = out["samples"][0]
    assert (sample["set"], sample["system"], sample["ground_truth"]) == ("arith", "Think.", "5")
    assert sample["sft"]["quality_score"] == 0.51 and sample["sft"]["answer"] == "5"
    assert len(out["samples"]) == 4 and [s["set"] for s in out["samples"]] == ["arith"] * 3 + ["halves"]
    # pooled: base 3/6 + 2/2, SFT 5/6 + 1/2
    assert (out["summary"]["base"]["accuracy"], out["summary"]["sft"]["accuracy"]) == (0.625, 0.75)
    assert out["by_set"]["halves"]["sft"]["accuracy"] == out["benchmarks"]["halves"]["sft"]["pass@1"] == 0.5
    assert out["accuracy_test"]["test"] == "paired_bootstrap"  # 2 samples per problem, as the blocks' tests


def test_a_file_without_schema_version_loads_as_schema_1():
    v1 = json.loads(V1.read_text())
    assert "schema_version" not in v1
    out = load(v1)
    assert out["schema_version"] == 1
    assert out["summary"] == v1["summary"] and out["benchmarks"] == v1["benchmarks"]
    assert out["summary"]["sft"]["accuracy"] == 1.0 and out["accuracy_test"]["test"] == "mcnemar_exact"


def test_the_model_alone_is_rendered_on_load_and_newer_versions_are_refused():
    full = _results(SUITES)
    model = {k: full[k] for k in ("schema_version", "benchmarks", "benchmark_samples")}
    assert load(model) == full
    with pytest.raises(ResultsError, match="schema_version 3; this version of distill reads 1 to 2"):
        load({**full, "schema_version": 3})
