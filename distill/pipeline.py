"""The three stages wired together: data -> SFT -> base-vs-SFT evaluation, writing the run folder.

The CLI, the Celery worker and the tests all call ``run_pipeline``; the worker passes hooks to
stream stages and metrics and to cancel. Everything that can be refused (suites, files, columns,
a dataset too small for the held-out split) is refused in the data stage, before any model loads.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from distill.config import ConfigError, RunConfig
from distill.data.builtin import default_system
from distill.data.prepare import (
    chat_token_lengths,
    data_report,
    ensure_chat_template,
    split_train_val,
    to_prompt_completion,
)
from distill.data.schema import ReasoningExample
from distill.data.sources import load_examples
from distill.distributed import launches_processes
from distill.errors import RunCancelled, UserError
from distill.evaluation.prompts import GENERAL_PROMPTS
from distill.evaluation.suites import (
    HELDOUT,
    Problem,
    Suite,
    asks_heldout,
    load_suite,
    parse_benchmarks,
)
from distill.evaluation.summary import format_summary_block
from distill.generation.engine import GenerationCancelled
from distill.models import ensure_local_model, load_model, load_tokenizer, save_model
from distill.report import write_report_md
from distill.resolve import uses_dataset
from distill.rundir import ADAPTER_FILE, RunDir, model_kind
from distill.tracking import TrackedRun, open_tracking

log = logging.getLogger("distill")
GENERAL = "general"


@dataclass
class PipelineHooks:
    on_stage: Callable[[str], None] | None = None
    on_metrics: Callable[[dict], None] | None = None
    should_cancel: Callable[[], bool] | None = None
    on_progress: Callable[[int, int], None] | None = None  # (problems answered, problems) over all suites
    on_plan: Callable[[dict[str, float]], None] | None = None  # the expected work of each stage (``work_plan``)

    def stage(self, name: str) -> None:
        log.info("Stage: %s", name)
        if self.on_stage:
            self.on_stage(name)

    def plan(self, work: dict[str, float]) -> None:
        total = sum(work.values()) or 1.0
        shares = ", ".join(f"{name} {100 * w / total:.0f}%" for name, w in work.items() if w)
        log.info("Expected share of the run's work (the progress bar's weights): %s", shares)
        if self.on_plan:
            self.on_plan(work)

    def check_cancel(self) -> None:
        if self.should_cancel and self.should_cancel():
            raise RunCancelled("cancelled")


@dataclass
class RunResult:
    output_dir: Path
    evaluation: dict[str, Any] | None = None
    data_report: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)


def distill_home() -> Path:
    return Path(os.environ.get("DISTILL_HOME", "outputs"))


def resolve_output_dir(config: RunConfig) -> Path:
    if config.output_dir:
        return Path(config.output_dir)
    return distill_home() / "distillation" / datetime.now().strftime("run_%Y%m%d_%H%M%S")


def system_prompt(config: RunConfig) -> str | None:
    return default_system(config.dataset)


def load_splits(config: RunConfig, hold_out: bool) -> tuple[list[ReasoningExample], Any, list[ReasoningExample]]:
    """(training examples, their read stats, held-out examples). builtin has its own held-out split;
    other sources hold out ``eval_samples`` rows after the training rows (in evaluate mode, the tail)."""
    n_train = config.effective_max_samples
    n_held = config.eval_samples if hold_out else 0
    training = config.mode != "evaluate"
    if config.dataset.startswith("builtin:"):
        train, stats = load_examples(config.dataset, n_train, split="train") if training else ([], None)
        held = load_examples(config.dataset, n_held, split="eval")[0] if n_held else []
        return train, stats, held
    if not training and not n_held:
        return [], None, []
    examples, stats = load_examples(config.dataset, None if n_train is None else n_train + n_held)
    if not training:
        return [], stats, examples[-n_held:]
    cut = len(examples) - n_held if n_train is None else min(n_train, len(examples) - n_held)
    if cut < 1:
        raise ConfigError(
            f"--eval_samples: holding out {n_held} rows for the heldout suite leaves none to train on: "
            f"{config.dataset} has {len(examples)} usable rows (use --eval_samples {max(len(examples) - 1, 0)} or "
            "fewer, or leave heldout out of --benchmarks)")
    if n_train is not None and cut < n_train:
        log.warning("Training on %d rows, not --max_samples %d: the dataset has %d rows and %d are held out",
                    cut, n_train, len(examples), n_held)
    return examples[:cut], stats, examples[cut:cut + n_held]


def heldout_suite(held_out: list[ReasoningExample], default_system: str | None) -> Suite:
    """The held-out rows as asked in training: the same system prompt, the question as it was."""
    graded = [ex for ex in held_out if ex.ground_truth]
    if len(graded) < len(held_out):
        log.warning("heldout: %d of %d held-out rows have no known final answer and are not evaluated",
                    len(held_out) - len(graded), len(held_out))
    problems = [Problem(id=str(i), prompt=ex.prompt, answer=str(ex.ground_truth),
                        meta={"system": ex.system or default_system}) for i, ex in enumerate(graded)]
    return Suite(name=HELDOUT, grader="math", source="held-out training rows", problems=problems)


def general_suite() -> Suite:
    problems = [Problem(id=str(i), prompt=p["prompt"], answer=p["ground_truth"]) for i, p in enumerate(GENERAL_PROMPTS)]
    return Suite(name=GENERAL, grader="math", source="fixed general prompts", problems=problems)


def load_suites(config: RunConfig, held_out: list[ReasoningExample]) -> list[Suite]:
    suites = []
    for spec in parse_benchmarks(config.benchmarks):
        if spec.name == HELDOUT and spec.path is None:
            suites.append(heldout_suite(held_out, system_prompt(config)))
        else:
            suites.append(load_suite(spec, config.benchmark_limit, config.seed))
        n = len(suites[-1].problems)
        log.info("Suite %s: %d problem%s (%s, grader %s)", suites[-1].name, n, "" if n == 1 else "s",
                 suites[-1].source, suites[-1].grader)
    if config.general_prompts:
        suites.append(general_suite())
    if config.benchmark_limit:
        suites = [Suite(s.name, s.grader, s.source, s.problems[:config.benchmark_limit]) for s in suites]
    return suites


def prepare_rows(config: RunConfig, tokenizer: Any, examples: list[ReasoningExample],
                 stats: Any) -> tuple[list[dict], list[dict], dict, tuple[int, int]]:
    """(training rows, validation rows, the data report, (their tokens, as trained: truncated))."""
    default_system = system_prompt(config)
    rows = [to_prompt_completion(ex, default_system) for ex in examples]
    lengths = chat_token_lengths(tokenizer, rows, progress=True)
    report = data_report(stats, lengths, config.max_seq_length)
    # Rows and their lengths shuffled together (the shuffle depends only on the count: the same split as the rows').
    train, val = split_train_val(list(zip(rows, lengths, strict=True)), config.val_ratio, config.seed)
    report.update(train_rows=len(train), val_rows=len(val))
    if report["truncated"]:
        log.warning("%d of %d rows are longer than --max_seq_length %d and will be truncated",
                    report["truncated"], len(rows), config.max_seq_length)
    tokens = tuple(sum(min(n, config.max_seq_length) for _, n in part) for part in (train, val))
    return [r for r, _ in train], [r for r, _ in val], report, tokens


# The expected work of each stage, in units of one token of a training row (forward and backward), so that a
# progress bar can weigh training against evaluation. Measured on the default model on CPU (docs/benchmarks.md):
# 180 trained tokens/s against 123 generated tokens/s in a batch of 64, so a generated token costs ~1.5 units; an
# answer uses about half its max_new_tokens (the quick test's 238 s of evaluation against its 53k-token budget, its
# 49 s of training for 9k tokens), so each budgeted token weighs 0.75. Validation is a forward only: a third.
BUDGETED_TOKEN_COST = 0.75
VALIDATION_TOKEN_COST = 1 / 3
SAVE_SHARE = 0.02  # merging LoRA into the base and writing it: seconds, whatever the run's size


def work_plan(config: RunConfig, tokens: tuple[int, int], suites: list[Suite]) -> dict[str, float]:
    """{"train": …, "evaluate": …, "save": …}: each stage's expected work (see BUDGETED_TOKEN_COST) from the
    (training, validation) rows' tokens and the suites."""
    merges = config.mode in ("all", "train") and config.use_lora
    validations = max(1.0, config.epochs * config.validations_per_epoch) if tokens[1] else 0.0
    train = config.epochs * tokens[0] + validations * VALIDATION_TOKEN_COST * tokens[1]
    answers = sum(len(s.problems) for s in suites) * config.num_samples * 2  # base and SFT
    evaluate = answers * config.max_new_tokens * BUDGETED_TOKEN_COST
    return {"train": train, "evaluate": evaluate, "save": SAVE_SHARE * (train + evaluate) if merges else 0.0}


def early_plan(config: RunConfig, asked: int, held_out: int) -> dict[str, float]:
    """The work of a run with a teacher, before the generate stage: the teacher's answers (problems × samples ×
    its token budget, priced as evaluation prices an answer), training on at most every one of them, and the
    held-out suite's evaluation. Sent first so that the bar covers the whole run and only rises; ``work_plan``
    replaces the estimates of the stages after generate once the traces are read."""
    generate = asked * config.num_generations * config.teacher_max_tokens * BUDGETED_TOKEN_COST
    if config.mode == "generate":
        return {"generate": generate}
    train = config.epochs * generate if config.mode in ("all", "train") else 0.0
    evaluate = held_out * config.num_samples * 2 * config.max_new_tokens * BUDGETED_TOKEN_COST
    merges = config.mode in ("all", "train") and config.use_lora
    return {"generate": generate, "train": train, "evaluate": evaluate,
            "save": SAVE_SHARE * (train + evaluate) if merges else 0.0}


def _attach_log_file(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    return handler


def run_pipeline(config: RunConfig, hooks: PipelineHooks | None = None) -> RunResult:
    hooks = hooks or PipelineHooks()
    run = RunDir(resolve_output_dir(config))
    run.root.mkdir(parents=True, exist_ok=True)
    handler = _attach_log_file(run.log)
    try:
        tracked = open_tracking(config, run.root)
        try:
            return _run(config, replace(hooks, on_metrics=tracked.on_metrics(hooks.on_metrics)), run, tracked)
        finally:
            tracked.finish()
    finally:
        log.removeHandler(handler)
        handler.close()


def _run(config: RunConfig, hooks: PipelineHooks, run: RunDir, tracked: TrackedRun) -> RunResult:
    """generate? → load → data → train → evaluate → save (merge) → model cards, each stage its own function."""
    result = RunResult(output_dir=run.root)
    _write_config(config, run)
    t_start = time.perf_counter()
    training = config.mode in ("all", "train")
    evaluating = config.mode in ("all", "evaluate")
    traces = None
    if config.generates_traces:
        traces = trace_stage(config, hooks, run, hold_out=evaluating and asks_heldout(config.benchmarks))
        result.data_report, result.timings["generate_s"] = traces.report, traces.seconds
        if config.mode == "generate":
            return _finish(result, run, t_start)
    model_path, tokenizer = _load_stage(config, hooks, training)
    data = _data_stage(config, hooks, run, tokenizer, traces, result)
    # A server is checked now, before any training, so that a wrong URL or key costs nothing.
    engine = make_engine(config) if evaluating and config.engine in SERVER_ENGINES else None
    if evaluating and config.engine == "llamacpp":  # a llama.cpp that is not built is said before training
        from distill.generation.llamacpp import require_llama_cpp

        require_llama_cpp()
    hooks.plan(work_plan(config, data.tokens, data.suites))
    trained = _train_stage(config, hooks, run, model_path, tokenizer, data, result) if training else None
    if evaluating:
        hooks.stage("evaluate")
        sft_path = config.sft_model_path or str(run.final_model)
        engine = engine or make_engine(config, model_path, tokenizer, sft_path, trained)
        result.evaluation = _evaluate_stage(config, hooks, run, engine, data.suites, sft_path, result)
        _record_evaluation(config, run, result, tracked, sft_path)
    if training and config.use_lora:
        _merge_stage(config, hooks, run, engine, model_path, tokenizer)
    if training:  # each saved model folder gets its card, with the evaluation just done
        from distill.export.card import write_model_cards

        write_model_cards(run, config, result.evaluation)
    return _finish(result, run, t_start)


# Engines that are servers: they need no local weights to evaluate, and are checked before training.
SERVER_ENGINES = frozenset({"openai"})


def make_engine(config: RunConfig, model_path: str | None = None, tokenizer: Any = None, sft_path: str = "",
                trained: Any = None) -> Any:
    """The engine evaluation asks the base and SFT models through, by ``--engine`` (the one place it is chosen):
    openai, a server (checked now); llamacpp, GGUFs of the base and of ``sft_path`` (as saved) through llama.cpp;
    hf, this process: the model just trained (``trained``; with LoRA its base is the adapter switched off), else
    the base and ``sft_path`` loaded from disk."""
    if config.engine == "openai":
        return remote_engine(config)
    if config.engine == "llamacpp":
        from distill.generation.llamacpp import engine_for_run

        return engine_for_run(config, str(model_path), tokenizer, sft_path)
    if trained is not None:
        return trained_engine(config, trained, tokenizer, str(model_path))
    return pair_engine(config, str(model_path), tokenizer, sft_path)


@dataclass
class StageData:
    """What the data stage hands on: the suites to evaluate, the rows to train on and their tokens."""

    suites: list[Suite]
    train_rows: list[dict] = field(default_factory=list)
    val_rows: list[dict] = field(default_factory=list)
    tokens: tuple[int, int] = (0, 0)  # (training, validation) tokens, as trained: for the work plan


def _write_config(config: RunConfig, run: RunDir) -> None:
    if config.generates_traces:  # a folder with traces resumes only the same generation
        from distill.traces.run import check_resumable

        check_resumable(json.loads(run.config.read_text()) if run.config.is_file() else None, config, run)
    run.config.write_text(json.dumps(config.to_json(), indent=2))
    named = ", ".join(f"{k} {v}" for k, v in (("name", config.name), ("preset", config.preset)) if v)
    log.info("Run folder: %s%s", run.root, f" ({named})" if named else "")


def _load_stage(config: RunConfig, hooks: PipelineHooks, training: bool) -> tuple[str | None, Any]:
    """(the model's local folder, its tokenizer); both None where a server evaluates and nothing trains."""
    hooks.stage("load")
    model_path = tokenizer = None
    if training or config.engine not in SERVER_ENGINES:
        model_path = ensure_local_model(config.model)
        tokenizer = load_tokenizer(model_path, config.trust_remote_code)
        ensure_chat_template(tokenizer)
    hooks.check_cancel()
    return model_path, tokenizer


def _data_stage(config: RunConfig, hooks: PipelineHooks, run: RunDir, tokenizer: Any, traces: Traces | None,
                result: RunResult) -> StageData:
    """The suites and the training rows; everything that can be refused is refused here, before a model loads."""
    hooks.stage("data")
    evaluating = config.mode in ("all", "evaluate")
    if traces is not None:
        train_examples, stats, held_out = traces.training_split(run)
    elif uses_dataset(config):
        train_examples, stats, held_out = load_splits(config, evaluating and asks_heldout(config.benchmarks))
    else:
        train_examples, stats, held_out = [], None, []
    data = StageData(suites=load_suites(config, held_out) if evaluating else [])
    if config.mode in ("all", "train"):
        data.train_rows, data.val_rows, data.tokens = _prepared_rows(config, tokenizer, train_examples, stats, traces,
                                                                     run, result)
        hooks.check_cancel()
    return data


def _train_stage(config: RunConfig, hooks: PipelineHooks, run: RunDir, model_path: str, tokenizer: Any,
                 data: StageData, result: RunResult) -> Any:
    """Trains and saves ``final_model``; the model trained in this process (None: the training processes saved it)."""
    hooks.stage("train")
    outcome = _train(config, hooks, run, model_path, tokenizer, data.train_rows, data.val_rows)
    result.timings["train_s"] = outcome.train_seconds
    if outcome.model is not None:
        log.info("Saving the trained model to %s", run.final_model)
        save_model(outcome.model, tokenizer, run.final_model)
    return outcome.model


def _evaluate_stage(config: RunConfig, hooks: PipelineHooks, run: RunDir, engine: Any, suites: list[Suite],
                    sft_path: str, result: RunResult) -> dict[str, Any]:
    """Every suite asked of the base and SFT models (the base's answers reused from --base_answers_dir)."""
    from distill.evaluation.evaluate import benchmark_settings, evaluate

    t0 = time.perf_counter()
    try:
        identity = model_identity(config, sft_path, config.engine in SERVER_ENGINES)
        asking = answers_kept(config, engine, identity)
        results = evaluate(asking, suites, benchmark_settings(config), run.benchmarks, system=system_prompt(config),
                           models=identity, should_cancel=hooks.should_cancel, on_progress=hooks.on_progress)
        if asking is not engine:
            log.info("%d of the base model's answers read from %s", asking.cache.hits, config.base_answers_dir)
    except GenerationCancelled:
        raise RunCancelled("cancelled during evaluation; the answers so far are kept") from None
    result.timings["evaluate_s"] = time.perf_counter() - t0
    return results


def _record_evaluation(config: RunConfig, run: RunDir, result: RunResult, tracked: TrackedRun, sft_path: str) -> None:
    """evaluation_results.json (with the models, the run's name and preset, the data report), report.md, the
    trackers, and the summary in the log."""
    results = result.evaluation or {}
    if config.engine in SERVER_ENGINES:
        sft_path = f"{config.engine_sft_model} at {config.engine_url}"
    results["models"] = {"base": config.model, "sft": sft_path}
    results["run"] = {"name": config.name, "preset": config.preset}
    if result.data_report:
        results["data_report"] = result.data_report
    run.evaluation.write_text(json.dumps(results, indent=2))
    write_report_md(run.report, results, config.model, sft_path)
    tracked.log_evaluation(results, [run.report, run.evaluation])
    log.info("\n%s", format_summary_block(results["summary"], results["deltas"], config.model, sft_path,
                                           results["benchmarks"], results["accuracy_test"]))


def _merge_stage(config: RunConfig, hooks: PipelineHooks, run: RunDir, engine: Any, model_path: str,
                 tokenizer: Any) -> None:
    """The LoRA adapter merged into the base, saved as ``merged_model`` (the adapter in memory when evaluation
    kept it, else read back from ``final_model``)."""
    hooks.stage("save")
    from peft import PeftModel

    trained = engine.model_of("sft") if engine is not None and engine.name == "hf" else None
    if not isinstance(trained, PeftModel):
        trained = PeftModel.from_pretrained(load_model(model_path, trust_remote_code=config.trust_remote_code),
                                            str(run.final_model))
    log.info("Saving the merged model (the LoRA adapter merged into the base) to %s", run.merged_model)
    save_model(trained.merge_and_unload(), tokenizer, run.merged_model)


def _prepared_rows(config: RunConfig, tokenizer: Any, examples: list[ReasoningExample], stats: Any,
                   traces: Traces | None, run: RunDir,
                   result: RunResult) -> tuple[list[dict], list[dict], tuple[int, int]]:
    """Training and validation rows, with the data report written; their tokens (for the work plan)."""
    train_rows, val_rows, report, tokens = prepare_rows(config, tokenizer, examples, stats)
    report = {**(traces.report if traces else {}), **report}
    run.data_report.write_text(json.dumps(report, indent=2))
    result.data_report = report
    log.info("Data: %d train rows, %d validation rows (token length p50 %s, p95 %s, max %s)",
             len(train_rows), len(val_rows), report["token_length"]["p50"], report["token_length"]["p95"],
             report["token_length"]["max"])
    return train_rows, val_rows, tokens


def _train(config: RunConfig, hooks: PipelineHooks, run: RunDir, model_path: str, tokenizer: Any,
           train_rows: list[dict], val_rows: list[dict]) -> Any:
    """The training stage's outcome; RunCancelled once a cancel has stopped it (a checkpoint saved)."""
    if launches_processes(config):
        from distill.distributed import train_distributed

        outcome = train_distributed(config, model_path, train_rows, val_rows, run.root,
                                    on_metrics=hooks.on_metrics, should_cancel=hooks.should_cancel)
    else:
        from distill.training import train

        log.info("Loading %s for training", config.model)
        model = load_model(model_path, trust_remote_code=config.trust_remote_code)
        outcome = train(config, model, tokenizer, train_rows, val_rows, run.root,
                        on_metrics=hooks.on_metrics, should_cancel=hooks.should_cancel)
    if outcome.cancelled:
        raise RunCancelled(f"cancelled at step {outcome.global_step}; checkpoint saved")
    return outcome


def _finish(result: RunResult, run: RunDir, t_start: float) -> RunResult:
    result.timings["total_s"] = time.perf_counter() - t_start
    run.timings.write_text(json.dumps(result.timings, indent=2))
    log.info("Done in %.1f s: %s", result.timings["total_s"], run.root)
    return result


@dataclass
class Traces:
    """What the generate stage hands on to training and evaluation."""

    report: dict[str, Any]
    kept: int
    held_out: list[ReasoningExample]
    seconds: float

    def training_split(self, run: RunDir) -> tuple[list[ReasoningExample], Any, list[ReasoningExample]]:
        if not self.kept:
            f = self.report["funnel"]
            raise TraceError(f"the teacher left no trace to train on: {f['asked']} problems asked, {f['samples']} "
                             f"samples, {f['correct']} correct, 0 kept ({run.generations} has every verdict)")
        examples, stats = load_examples(str(run.dataset), None)
        return examples, stats, self.held_out


class TraceError(UserError, RuntimeError):
    """Trace generation left nothing to go on with."""


def trace_stage(config: RunConfig, hooks: PipelineHooks, run: RunDir, hold_out: bool) -> Traces:
    """Teacher checked first, then the problems planned (nothing asked yet), then generation."""
    from distill.traces.run import generate, messages_for, plan

    hooks.stage("load")
    engine = teacher_engine(config)
    student = load_tokenizer(ensure_local_model(config.model), config.trust_remote_code)
    ensure_chat_template(student)
    hooks.check_cancel()
    hooks.stage("data")
    planned = plan(config, config.eval_samples if hold_out else 0)
    hooks.check_cancel()
    hooks.plan(early_plan(config, len(planned.asked), len(planned.held_out)))
    hooks.stage("generate")
    t0 = time.perf_counter()
    try:
        made = generate(config, planned, engine, student, run, hooks.should_cancel, hooks.on_progress)
    finally:
        engine.close()
    held = [ReasoningExample(prompt=messages_for(config, planned.system, p.prompt)[-1]["content"], reasoning="",
                             answer="", system=planned.system, ground_truth=p.answer) for p in planned.held_out]
    return Traces(made.report, made.kept, held, time.perf_counter() - t0)


def teacher_engine(config: RunConfig) -> Any:
    """The teacher: an OpenAI-compatible server, checked now (reachable, key accepted, model served), or a local
    model in this process (a LoRA adapter folder rides on its base)."""
    from distill.traces.run import TEACHER, TEACHER_KEY_ENV

    if config.teacher_url:
        from distill.generation.remote import OpenAIEngine

        engine = OpenAIEngine(config.teacher_url, {TEACHER: str(config.teacher_model)},
                              concurrency=config.engine_concurrency, timeout_s=config.teacher_timeout,
                              role="teacher", key_env=TEACHER_KEY_ENV)
        engine.check()
        return engine
    from distill.generation.hf import HFEngine

    path = ensure_local_model(str(config.teacher_model))
    if model_kind(path) == "adapter":
        from peft import PeftModel

        base = json.loads((Path(path) / ADAPTER_FILE).read_text())["base_model_name_or_path"]
        base_model = load_model(ensure_local_model(base), trust_remote_code=config.trust_remote_code)
        model = PeftModel.from_pretrained(base_model, path)
    else:
        model = load_model(path, trust_remote_code=config.trust_remote_code)
    tokenizer = load_tokenizer(path, config.trust_remote_code)
    ensure_chat_template(tokenizer)
    log.info("Teacher %s loaded in this process", config.teacher_model)
    return HFEngine(tokenizer, {TEACHER: (model, None)}, batch_size=config.eval_batch_size)


def answers_kept(config: RunConfig, engine: Any, identity: dict[str, Any]) -> Any:
    """The engine, answering the base model's prompts from ``--base_answers_dir`` where they were asked before."""
    if not config.base_answers_dir:
        return engine
    from distill.generation.cache import BaseAnswerCache, CachingEngine

    key = {"base": identity["base"], "engine": identity.get("engine", engine.name),
           "trust_remote_code": config.trust_remote_code}
    return CachingEngine(engine, BaseAnswerCache(Path(config.base_answers_dir), key))


def model_identity(config: RunConfig, sft_path: str, remote: bool) -> dict[str, Any]:
    """What answered: stored answers are reused only for the same models (a run trained again answers afresh)."""
    if remote:
        return {"engine": config.engine_url, "base": config.engine_base_model or config.model,
                "sft": config.engine_sft_model}
    files = [p for p in Path(sft_path).rglob("*") if p.is_file()] if Path(sft_path).is_dir() else []
    return {"base": config.model, "sft": sft_path,
            "sft_saved": max((p.stat().st_mtime_ns for p in files), default=0),
            "sft_bytes": sum(p.stat().st_size for p in files)}


def remote_engine(config: RunConfig) -> Any:
    """An OpenAI-compatible server, checked now (reachable, key accepted, both models served)."""
    from distill.generation.remote import OpenAIEngine

    engine = OpenAIEngine(str(config.engine_url), {"base": config.engine_base_model or config.model,
                                                   "sft": str(config.engine_sft_model)},
                          concurrency=config.engine_concurrency)
    engine.check()
    return engine


def trained_engine(config: RunConfig, model: Any, tokenizer: Any, model_path: str) -> Any:
    """The engine for a model trained in this process: LoRA base = the adapter switched off."""
    from distill.generation.hf import HFEngine

    base = None if config.use_lora else load_model(model_path, trust_remote_code=config.trust_remote_code)
    return HFEngine.for_pair(model, tokenizer, base=base, batch_size=config.eval_batch_size)


def pair_engine(config: RunConfig, model_path: str, tokenizer: Any, sft_path: str) -> Any:
    """Base and SFT from disk: an adapter rides on the base weights; full weights load beside the base."""
    from peft import PeftModel

    from distill.generation.hf import HFEngine

    kind = model_kind(sft_path)
    if kind is None:
        raise ConfigError(f"--sft_model_path: {sft_path} holds neither adapter_config.json nor config.json")
    log.info("Loading the base model and the SFT model (%s) for evaluation", sft_path)
    base = load_model(model_path, trust_remote_code=config.trust_remote_code)
    if kind == "adapter":
        sft = PeftModel.from_pretrained(base, sft_path)
        return HFEngine.for_pair(sft, tokenizer, batch_size=config.eval_batch_size)
    sft = load_model(sft_path, trust_remote_code=config.trust_remote_code)
    return HFEngine.for_pair(sft, tokenizer, base=base, batch_size=config.eval_batch_size)
