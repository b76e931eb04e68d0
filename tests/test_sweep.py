"""Sweeps: expansion, validation before anything runs, merged points, the Holm-corrected verdict, and a real
sweep of tiny runs through the CLI (a failing point, then a resume that runs nothing finished)."""

from __future__ import annotations

import json

import pytest

from distill.cli import main
from distill.sweep.plan import SweepError, SweepSpec, combinations, plan
from distill.sweep.verdict import holm, verdict


NOT_A_NUMBER = "Input should be a valid number, unable to parse string as a number"


def names(spec: SweepSpec) -> list[str]:
    return [p.name for p in plan(spec)]


def test_grid_crosses_axes_in_order():
    spec = SweepSpec(base={"model": "tiny-random"}, grid={"learning_rate": [1e-4, 1e-3], "lora_r": [8, 16]})
    assert names(spec) == ["learning_rate=0.0001,lora_r=8", "learning_rate=0.0001,lora_r=16",
                           "learning_rate=0.001,lora_r=8", "learning_rate=0.001,lora_r=16"]
    assert [p.config.lora_r for p in plan(spec)] == [8, 16, 8, 16]


def test_paired_axes_move_together_and_seeds_repeat_each_point():
    spec = SweepSpec(paired=[{"lora_r": [8, 32], "lora_alpha": [16, 64]}], seeds=[1, 2])
    points = plan(spec)
    assert [(p.config.lora_r, p.config.lora_alpha, p.config.seed) for p in points] == [
        (8, 16, 1), (8, 16, 2), (32, 64, 1), (32, 64, 2)]
    assert points[0].name == "lora_r=8,lora_alpha=16,seed=1"


def test_random_draw_is_a_seeded_subset_of_the_grid():
    spec = SweepSpec(grid={"learning_rate": [1e-4, 3e-4, 1e-3], "lora_r": [4, 8, 16]}, random=4, random_seed=7)
    full = combinations(SweepSpec(grid=spec.grid))
    drawn = combinations(spec)
    assert len(drawn) == 4 and all(c in full for c in drawn)
    assert drawn == combinations(spec)  # the same seed draws the same points
    assert combinations(spec.model_copy(update={"random_seed": 8})) != drawn


def test_points_that_are_the_same_run_are_merged():
    spec = SweepSpec(base={"use_kl_regularization": False}, grid={"kl_coef": [0.0, 0.1, 1.0]})
    points = plan(spec)
    assert len(points) == 1 and points[0].merged == ["kl_coef=0.1", "kl_coef=1"]
    with_kl = SweepSpec(grid={"use_kl_regularization": [True, False], "kl_coef": [0.1, 1.0]})
    assert names(with_kl) == ["use_kl_regularization=True,kl_coef=0.1", "use_kl_regularization=True,kl_coef=1",
                              "use_kl_regularization=False,kl_coef=0.1"]


@pytest.mark.parametrize("spec, expected", [
    (SweepSpec(grid={"lr": [1e-3]}), ["axis 'lr': not a run configuration field"]),
    (SweepSpec(), ["the sweep has no axis: give at least one field with values (or seeds)"]),
    (SweepSpec(grid={"epochs": []}), ["axis epochs: no values"]),
    (SweepSpec(paired=[{"lora_r": [8, 16], "lora_alpha": [16]}]),
     ["paired axis lora_r, lora_alpha: the value lists differ in length ([1, 2])"]),
    (SweepSpec(grid={"learning_rate": [1e-3, "fast"], "epochs": [1, 0]}),
     ["point learning_rate=0.001,epochs=0: --epochs: Input should be greater than 0",
      "point learning_rate=fast,epochs=1: --learning_rate: " + NOT_A_NUMBER,
      "point learning_rate=fast,epochs=0: --epochs: Input should be greater than 0",
      "point learning_rate=fast,epochs=0: --learning_rate: " + NOT_A_NUMBER]),
    (SweepSpec(grid={"lora_r": list(range(1, 10)), "epochs": list(range(1, 10))}),
     ["the sweep has 81 points, more than max_points=64"]),
    (SweepSpec(base={"batch_size": 0}, grid={"epochs": [1, 2]}),
     ["base configuration: --batch_size: Input should be greater than 0"]),
])
def test_bad_sweeps_are_refused_with_every_problem_named(spec, expected):
    with pytest.raises(SweepError) as e:
        plan(spec)
    assert e.value.problems == expected


def test_holm_adjusts_by_rank_and_keeps_order():
    # Sorted: 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> 0.06 (adjusted values never decrease).
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # 0.5 * 2 caps at 1; the next may not be smaller
    assert holm([]) == []


def test_verdict_names_a_winner_only_when_it_beats_every_point_after_correction():
    n = 40
    clear = {"a": [0.0] * n, "b": [1.0] * 30 + [0.0] * 10, "c": [0.0] * 5 + [1.0] * 2 + [0.0] * 33}
    v = verdict(clear)
    # b vs a: 30 discordant pairs all for b, p = 2 * 0.5**30; b vs c: 30 for b, 2 for c.
    assert v.winner == "b" and v.tied == []
    assert {c.point: c.worse for c in v.comparisons} == {"a": True, "c": True}
    assert v.comparisons[0].p_value == pytest.approx(2 * 0.5 ** 30, rel=1e-3)
    assert "winner: b" in v.text

    tie = {"x": [1.0] * 20 + [0.0] * 20, "y": [0.0] * 2 + [1.0] * 20 + [0.0] * 18, "z": [0.0] * 40}
    v = verdict(tie)
    # x and y differ on 4 problems, 2 each way: p = 1; z loses on 20 of 20: p = 2 * 0.5**20, x 3 pts, Holm x2.
    assert v.best == "x" and v.winner is None and v.tied == ["y"]
    assert [c.p_holm for c in v.comparisons] == pytest.approx([1.0, 2 * 2 * 0.5 ** 20], rel=1e-3)
    assert v.text.startswith("no single winner") and "tied with the best: y" in v.text

    noise = {"p": [1.0] * 5 + [0.0] * 15, "q": [0.0] * 2 + [1.0] * 4 + [0.0] * 14, "r": [1.0] * 3 + [0.0] * 17}
    v = verdict(noise)
    assert v.best == "p" and v.winner is None and sorted(v.tied) == ["q", "r"]
    assert "within noise" in v.text


def test_one_comparison_survives_raw_but_not_after_holm():
    # Raw p = 2 * 0.5**6 = 0.03125 < 0.05 for both comparisons; Holm doubles the smaller: 0.0625 -> no winner.
    base = [0.0] * 20
    scores = {"best": [1.0] * 6 + [0.0] * 14, "m": list(base), "n": list(base)}
    v = verdict(scores)
    assert [c.p_value for c in v.comparisons] == pytest.approx([0.03125, 0.03125])
    assert [c.p_holm for c in v.comparisons] == pytest.approx([0.0625, 0.0625])
    assert v.winner is None and v.tied == ["m", "n"]


@pytest.mark.slow
def test_cli_sweep_runs_points_reports_a_failure_and_resumes_without_rerunning(distill_home, tiny_run, capsys):
    bad = distill_home / "broken.jsonl"
    bad.write_text("this is not json\n")
    flags = [f"--{k}={v}" for k, v in tiny_run.items() if k != "general_prompts"] + ["--no-general_prompts"]
    out = distill_home / "sw"
    argv = ["sweep", *flags, "--grid", "learning_rate=1e-3,2e-3", "--grid", f"dataset=builtin:reasoning,{bad}",
            "--output_dir", str(out)]
    assert main(argv) == 1  # one point per learning rate failed on the broken file
    printed = capsys.readouterr().out
    assert printed.startswith("4 runs: learning_rate=1e-3,dataset=builtin:reasoning; ")
    summary = json.loads((out / "sweep.json").read_text())
    status = {r["name"]: r["status"] for r in summary["points"]}
    assert status == {"learning_rate=1e-3,dataset=builtin:reasoning": "done",
                      f"learning_rate=1e-3,dataset={bad}": "failed",
                      "learning_rate=2e-3,dataset=builtin:reasoning": "done",
                      f"learning_rate=2e-3,dataset={bad}": "failed"}
    done = [r for r in summary["points"] if r["status"] == "done"]
    assert all(0.0 <= r["objective"] <= 1.0 and len(r["objective_ci"]) == 2 and r["wall_s"] > 0 for r in done)
    assert summary["verdict"]["n_problems_compared"] == tiny_run["eval_samples"]
    assert summary["diff"]["learning_rate"] == {r["name"]: float(r["overrides"]["learning_rate"])
                                                for r in summary["points"]}
    # The base model answered once: the second point read its answers.
    second = out / "points" / "learning_rate=2e-3,dataset=builtin_reasoning" / "distillation_pipeline.log"
    assert f"{tiny_run['eval_samples']} of the base model's answers read" in second.read_text()
    assert len({r["base"] for r in done}) == 1
    md = (out / "sweep.md").read_text()
    assert "**Verdict:**" in md and "| learning_rate=2e-3,dataset=builtin:reasoning | done |" in md

    finished = {r["folder"]: (out / r["folder"] / "evaluation_results.json").stat().st_mtime_ns for r in done}
    assert main(argv) == 1
    assert {f: (out / f / "evaluation_results.json").stat().st_mtime_ns for f in finished} == finished
    log = (out / "points" / f"learning_rate=1e-3,dataset={bad}".replace("/", "_") / "failed").read_text()
    assert "broken.jsonl" in log


def test_cli_dry_run_prints_the_runs_and_refuses_bad_axes(capsys):
    argv = ["sweep", "--model", "tiny-random", "--no-use_kl_regularization", "--grid", "kl_coef=0.1,0.5",
            "--paired", "lora_r=4,8;lora_alpha=8,16", "--seeds", "1,2", "--dry_run"]
    assert main(argv) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("4 runs: kl_coef=0.1,lora_r=4,lora_alpha=8,seed=1 (also kl_coef=0.5,lora_r=4,lora_alpha=8,"
                          "seed=1); ")
    assert main(["sweep", "--grid", "learning_rate", "--dry_run"]) == 2
    assert "error: --grid 'learning_rate': expected FIELD=V1,V2,…" in capsys.readouterr().err
    assert main(["sweep", "--grid", "epochs=1,x", "--seeds", "a", "--dry_run"]) == 2
    assert "error: --seeds: expected comma-separated whole numbers, got 'a'" in capsys.readouterr().err
    assert main(["sweep", "--grid", "epochs=1,0", "--dry_run"]) == 2
    assert "error: point epochs=0: --epochs: Input should be greater than 0" in capsys.readouterr().err
