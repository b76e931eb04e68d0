"""Progress over the whole run and cancels that stop within a batch (the newcomer's path, items 3 and 4).

- The recorder weighs training, evaluation and saving by the pipeline's work plan, advances evaluation per problem
  answered and keeps an ETA for the whole run (real Store on SQLite, a fake clock).
- A cancel during the validation pass stops after the batch in progress; one at an epoch's last step starts no
  validation pass and saves one checkpoint (the tiny model); the log says what a cancel waits for.
"""

from __future__ import annotations

import json
import logging
import sys
from itertools import pairwise
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "service"))
from svc_helpers import make_settings, migrate  # noqa: E402

from distill.config import build_config  # noqa: E402
from distill.errors import RunCancelled  # noqa: E402
from distill.evaluation.suites import Problem, Suite  # noqa: E402
from distill.pipeline import BUDGETED_TOKEN_COST, SAVE_SHARE, PipelineHooks, run_pipeline, work_plan  # noqa: E402

# --------------------------------------------------------------------------- the recorder

@pytest.fixture
def recorder(tmp_path):
    """A RunRecorder on a claimed run of a real Store (SQLite), its clock in our hands, no thread."""
    from backend.store import Store
    from backend.tables import Run, utcnow
    from worker.recorder import RunRecorder

    settings = make_settings(tmp_path / "home")
    migrate(settings)
    store = Store(settings)
    with store.sessions() as s:
        run = Run(name="p", status="queued", config={"mode": "all", "model": "tiny-random", "epochs": 2},
                  created_at=utcnow(), progress=0.0, cancel_requested=False, attempts=0, task_id="t")
        s.add(run)
        s.commit()
        run_id = run.id
    rec = RunRecorder(store, store.claim(run_id, "t", "w"), epochs=2)
    rec.clock = lambda: rec.now  # type: ignore[method-assign]
    rec.now = 0.0  # type: ignore[attr-defined]

    def read() -> Run:
        assert rec.flush()
        with store.sessions() as s:
            return s.get(Run, run_id)

    rec.read = read  # type: ignore[attr-defined]
    rec.run_id = run_id  # type: ignore[attr-defined]
    return rec


def at(rec, now: float) -> None:
    rec.now = now


def test_progress_weighs_training_and_evaluation_with_an_eta_for_the_whole_run(recorder):
    rec = recorder
    rec.on_stage("load")
    rec.on_plan({"train": 100.0, "evaluate": 300.0, "save": 0.0})  # training a quarter of the work
    rec.on_stage("train")
    at(rec, 0.0)
    rec.on_metrics({"step": 1, "epoch": 0.5, "loss": 1.0})  # a quarter of the 2 epochs
    at(rec, 10.0)
    rec.on_metrics({"step": 2, "epoch": 1.0, "loss": 0.9})
    run = rec.read()
    # Half of training = 12.5 % of the run; 6.25 % took 10 s, 87.5 % is left: 140 s, evaluation included.
    assert (run.progress, run.eta_s) == (0.125, 140.0)

    at(rec, 25.0)
    rec.on_metrics({"step": 4, "epoch": 2.0, "loss": 0.8})
    rec.on_stage("evaluate")
    at(rec, 30.0)
    rec.on_progress(0, 100)
    run = rec.read()
    assert run.progress == 0.25, "training done is a quarter of the run, not all of it"
    assert run.eta_s == 95.0  # at 25 s training predicted the end at 125 s (18.75 % took 25 s, 75 % was left)

    at(rec, 90.0)
    rec.on_progress(40, 100)  # 40 problems in 60 s: 30 % of the run; 45 % is left
    run = rec.read()
    assert (run.progress, run.eta_s) == (0.55, 90.0)
    rec._count_down(120.0)  # no report for 30 s: the ETA counts down
    assert rec.read().eta_s == 60.0

    rec.on_progress(100, 100)
    rec.on_stage("save")
    assert rec.read().progress == 1.0


def test_a_cancel_says_what_it_waits_for(recorder):
    from backend.tables import Run

    rec = recorder
    lines: list[str] = []
    rec.add_log = lambda level, message, ts=None: lines.append(message)  # type: ignore[method-assign]

    distill_log, level = logging.getLogger("distill"), logging.getLogger("distill").level
    distill_log.addHandler(rec.handler)
    distill_log.setLevel(logging.INFO)  # as the worker sets it
    try:
        rec.on_stage("train")
        with rec.store.sessions() as s:
            s.get(Run, rec.run_id).cancel_requested = True
            s.commit()
        rec.beat()
        rec.beat()  # said once
    finally:
        distill_log.removeHandler(rec.handler)
        distill_log.setLevel(level)
    assert rec.should_cancel()
    assert lines == ["cancel requested: stopping after this training step or validation batch; saving a checkpoint "
                     "so --resume continues"]


def test_work_plan_weighs_budgeted_answers_against_trained_tokens():
    cfg = build_config({"model": "tiny-random", "epochs": 2, "max_new_tokens": 100, "num_samples": 1})
    suite = Suite("heldout", "math", "rows", [Problem(id=str(i), prompt="q", answer="1") for i in range(10)])
    work = work_plan(cfg, (3000, 300), [suite])
    # Validation (a forward only: a third) runs validations_per_epoch times per epoch.
    assert cfg.validations_per_epoch == 4 and work["train"] == pytest.approx(2 * 3000 + 2 * 4 * 100)
    assert work["evaluate"] == pytest.approx(10 * 2 * 100 * BUDGETED_TOKEN_COST)  # base and SFT
    assert work["save"] == pytest.approx(SAVE_SHARE * (work["train"] + work["evaluate"]))


# --------------------------------------------------------------------------- cancels in training

@pytest.fixture
def counted_validation(monkeypatch):
    """Counts the validation batches; ``cancel_at`` (a callable of the counts) decides when a cancel is asked."""
    from distill.training import DistillSFTTrainer

    seen = {"val": 0, "train": 0, "cancel": False}
    predict, train_step = DistillSFTTrainer.prediction_step, DistillSFTTrainer.training_step

    def prediction_step(self, *a, **kw):
        seen["val"] += 1
        seen["cancel"] = seen["cancel"] or seen["cancel_at"](seen)
        return predict(self, *a, **kw)

    def training_step(self, *a, **kw):
        seen["train"] += 1
        seen["cancel"] = seen["cancel"] or seen["cancel_at"](seen)
        return train_step(self, *a, **kw)

    monkeypatch.setattr(DistillSFTTrainer, "prediction_step", prediction_step)
    monkeypatch.setattr(DistillSFTTrainer, "training_step", training_step)
    return seen


# 20 training rows (5 steps of 2 micro-batches of 2 rows), 20 validation rows (10 batches of 2), validated at the
# epoch's end.
VALIDATED = {"mode": "train", "max_samples": 40, "val_ratio": 0.5, "use_lora": True, "validations_per_epoch": 1}


def _cancelled_run(distill_home, tiny_run, seen, name: str, **overrides) -> Path:
    out = distill_home / name
    cfg = build_config({**tiny_run, **VALIDATED, "output_dir": str(out), **overrides})
    with pytest.raises(RunCancelled):
        run_pipeline(cfg, PipelineHooks(should_cancel=lambda: seen["cancel"]))
    return out


def test_a_cancel_during_validation_stops_after_that_batch(distill_home, tiny_run, counted_validation):
    seen = counted_validation
    seen["cancel_at"] = lambda s: s["val"] >= 1  # asked while the first validation batch runs
    out = _cancelled_run(distill_home, tiny_run, seen, "v")
    assert seen["val"] == 1, f"{seen['val']} validation batches ran after the cancel, not 1 of 10"
    log = (out / "distillation_pipeline.log").read_text()
    assert "Validation: 20 rows in 10 batches" in log
    assert "Cancel: stopped validation after batch 1 of 10 at step 5" in log
    # One checkpoint, at the step the cancel stopped: --resume continues from it.
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-5"]
    points = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert not any("eval_loss" in p for p in points), "a cut validation pass reports no loss"


def test_a_cancel_at_an_epochs_last_step_starts_no_validation(distill_home, tiny_run, counted_validation):
    seen = counted_validation
    seen["cancel_at"] = lambda s: s["train"] >= 10  # the last micro-batch of the epoch's last step (2 per step)
    out = _cancelled_run(distill_home, tiny_run, seen, "e")
    assert seen["val"] == 0, f"a cancelled run ran {seen['val']} validation batches"
    assert "Cancel: stopped after this training step at step 5" in (out / "distillation_pipeline.log").read_text()
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-5"]


def test_a_cancel_at_a_validated_step_starts_no_validation(distill_home, tiny_run, counted_validation):
    seen = counted_validation  # validated after every step: a cancel in step 2 skips step 2's pass
    seen["cancel_at"] = lambda s: s["train"] >= 4  # step 2's last micro-batch
    out = _cancelled_run(distill_home, tiny_run, seen, "s", validations_per_epoch=5)
    assert seen["val"] == 10, f"{seen['val']} validation batches ran, not step 1's 10"
    assert "Cancel: stopped after this training step at step 2" in (out / "distillation_pipeline.log").read_text()
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]


# --------------------------------------------------------------------------- a run with a teacher

def test_a_run_with_a_teacher_has_one_bar_that_only_rises(recorder, tmp_path, distill_home):
    """--mode all with a teacher: the plan covers generate, train and evaluate from the start, so the bar does
    not start again after the generate stage, and generation ends well short of the whole run."""
    from standin_teacher import MODEL, StandinTeacher

    from distill.resolve import resolve_config

    rows = {f"What is {i} plus {i} apples in total?": str(2 * i) for i in range(1, 9)}
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in rows.items()))
    seen: list[tuple[str | None, float]] = []

    def recorded(hook):
        def call(*args):
            hook(*args)
            seen.append((recorder.stage, recorder.read().progress))
        return call

    hooks = PipelineHooks(on_stage=recorded(recorder.on_stage), on_progress=recorded(recorder.on_progress),
                          on_plan=recorded(recorder.on_plan), on_metrics=recorded(recorder.on_metrics))
    with StandinTeacher(answers=rows) as t:
        cfg = resolve_config({"mode": "all", "dataset": str(path), "teacher_model": MODEL, "teacher_url": t.url,
                              "model": "tiny-random", "num_generations": 2, "teacher_max_tokens": 40,
                              "output_dir": str(tmp_path / "run"), "max_seq_length": 512, "eval_samples": 2,
                              "epochs": 2, "general_prompts": False, "max_new_tokens": 8, "benchmarks": ["heldout"]})
        run_pipeline(cfg, hooks)
    fractions = [p for _, p in seen]
    assert all(b >= a for a, b in pairwise(fractions)), seen
    generated = [p for stage, p in seen if stage == "generate"]
    assert generated and 0.05 < generated[-1] < 0.8, seen  # generation done: the bar well short of the end
    assert {s for s, _ in seen} >= {"generate", "train", "evaluate"} and fractions[-1] > 0.95, seen
