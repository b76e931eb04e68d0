"""The one run configuration: used by the CLI, the REST API and the dashboard.

Field names are the CLI flag names without dashes. Defaults are the embedded CPU demo
(model ``smollm2-135m`` on ``builtin:reasoning``); ``--preset qwen2.5-0.5b`` restores the reference
Qwen2.5-0.5B + OpenThoughts-114k setup. Each field carries its CLI group and help text,
so the CLI, the API's OpenAPI schema and the dashboard form all show the same words.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from distill.errors import UserError, first_line
from distill.evaluation.suites import BUILTIN_SUITES, HELDOUT  # the suite list in --benchmarks' help

EMBEDDED_MODEL = "smollm2-135m"
BUILTIN_DATASET = "builtin:reasoning"
# open-r1's prompt for OpenR1-Math-220k (scripts/generate_reasoning.py).
OPEN_R1_PROMPT = ("You will be given a problem. Please reason step by step, and put your final answer within "
                  "\\boxed{}:\n{problem}")


def _f(default: Any, group: str, help: str, *, reference: Any = None, **kw: Any) -> Any:
    """A field with its CLI group, help, and (when it differs) the reference setup's default."""
    extra: dict[str, Any] = {"group": group}
    if reference is not None:
        extra["reference_default"] = reference
    return Field(default, description=help, json_schema_extra=extra, **kw)


class ConfigError(UserError, ValueError):
    """A bad run configuration. ``issues`` lists (field, message) pairs, every bad field once; the
    message is one line naming them (``--epochs: must be greater than 0 (got 0)``)."""

    def __init__(self, message: str, issues: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.issues = issues if issues is not None else _issues_of(message)


def _issues_of(message: str) -> list[tuple[str, str]]:
    field, sep, msg = message.partition(": ")
    return [(field.removeprefix("--"), msg)] if sep and field.startswith("--") else [("", message)]


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    # --- run ---
    mode: Literal["all", "train", "evaluate", "generate"] = _f(
        "all", "run",
        "Pipeline mode: all = train then evaluate (with --teacher_model: generate traces first); generate = build a "
        "training set from a teacher's verified traces on the --dataset problems")
    preset: str | None = _f(None, "run", "Named preset filling the fields below (see --list_presets)")
    name: str | None = _f(None, "run", "Run name (free text): the trackers' run name, in the report and model cards")
    output_dir: str | None = _f(None, "run", "Run folder; default $DISTILL_HOME/distillation/run_YYYYMMDD_HHMMSS from "
                                "the command line, $DISTILL_HOME/runs/run_N on the service")
    seed: int = _f(42, "run", "Random seed (data shuffle, generator, init)")
    resume: bool = _f(False, "run", "Resume from --output_dir: training from its last checkpoint, trace generation "
                      "from the problems already answered")
    report_to: list[str] = _f(
        ["none"], "run",
        "Experiment trackers that get the configuration, every training point, the evaluation (pass@1 with its "
        "interval, SFT - base with its p-value, diagnostics) and report.md, comma-separated: none, trackio (local "
        "SQLite under $DISTILL_HOME/trackio), mlflow (MLFLOW_TRACKING_URI, default $DISTILL_HOME/mlruns.db), "
        "tensorboard (RUN/tensorboard), wandb (offline unless WANDB_MODE=online); a tracker that is missing or "
        "unreachable is skipped with a warning")
    num_gpus: int = _f(
        1, "run",
        "GPUs for training: >1 trains N processes through accelerate launch (DDP; without CUDA, N CPU processes), "
        "each on 1/N of the rows, so one optimizer step takes batch_size x gradient_accumulation x N rows",
        ge=1, le=64,
    )

    # --- model ---
    model: str = _f(
        EMBEDDED_MODEL, "model",
        "Base model: 'smollm2-135m' (embedded, offline), 'tiny-random' (test model), a hub id or a local folder",
        reference="Qwen/Qwen2.5-0.5B",
    )
    sft_model_path: str | None = _f(None, "model", "Adapter or merged model to evaluate (--mode evaluate)")
    trust_remote_code: bool = _f(False, "model", "Allow custom model code from the hub")

    # --- data ---
    dataset: str = _f(
        BUILTIN_DATASET, "data",
        "Training data: builtin:reasoning, a hub id (streamed) or a local .jsonl/.json/.parquet file or folder",
        reference="open-thoughts/OpenThoughts-114k",
    )
    max_samples: int | None = _f(None, "data", "Max training rows (default: all; builtin:reasoning: 1000)", ge=1, le=10_000_000)
    max_seq_length: int = _f(1024, "data", "Max tokens per training row (longer rows are truncated and counted)", ge=16, le=131_072)
    val_ratio: float = _f(0.1, "data", "Fraction of rows held out for validation loss / early stopping", ge=0.0, lt=0.9)

    # --- training ---
    epochs: float = _f(3, "training", "Training epochs", gt=0, le=1000)
    batch_size: int = _f(2, "training", "Per-device batch size", gt=0, le=4096)
    gradient_accumulation: int = _f(2, "training", "Gradient accumulation steps", reference=8, gt=0, le=4096)
    learning_rate: float = _f(1e-3, "training", "Learning rate", reference=2e-5, gt=0, le=1.0)
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup"] = _f("linear", "training", "LR schedule")
    warmup_ratio: float = _f(0.0, "training", "Fraction of steps spent warming up the LR", ge=0.0, lt=1.0)
    weight_decay: float = _f(0.0, "training", "AdamW weight decay", ge=0.0, le=1.0)
    max_grad_norm: float = _f(1.0, "training", "Gradient clipping norm", gt=0)
    early_stopping_patience: int = _f(3, "training", "Stop after this many validation passes in a row without a better "
                                      "validation loss (0: never)", ge=0, le=1000)
    validations_per_epoch: int = _f(4, "training", "Validation-loss passes per epoch, each saving a checkpoint (early "
                                    "stopping counts passes; the best one is kept)", ge=1, le=1000)
    precision: Literal["auto", "fp32", "bf16"] = _f("auto", "training", "auto: bf16 autocast where the hardware does it well (CUDA with bf16, CPUs with AMX or AVX512-BF16), else fp32")
    packing: bool = _f(True, "training", "Padding-free batches: each micro-batch's rows concatenated, no pad tokens, per-row positions and attention (no cross-row attention); --no-packing pads to the longest row")

    # --- LoRA ---
    use_lora: bool = _f(True, "lora", "Train LoRA adapters (off: full fine-tuning)")
    lora_r: int = _f(16, "lora", "LoRA rank", gt=0, le=4096)
    lora_alpha: int = _f(32, "lora", "LoRA alpha", gt=0, le=65536)
    lora_dropout: float = _f(0.0, "lora", "LoRA dropout", ge=0.0, lt=1.0)
    lora_target_modules: str = _f("all-linear", "lora", "Comma-separated module names, or all-linear")

    # --- KL ---
    use_kl_regularization: bool = _f(True, "kl", "Add kl_coef * KL(trained || base) on assistant tokens to the loss "
                                     "(--no-use_kl_regularization: plain cross-entropy)")
    kl_coef: float = _f(0.1, "kl", "KL coefficient", ge=0.0, le=1000.0)

    # --- evaluation ---
    benchmarks: list[str] = _f(
        ["heldout"], "evaluation",
        "Suites to evaluate base and SFT on, comma-separated: heldout (held-out training rows), "
        + ", ".join(name for name in BUILTIN_SUITES if name != HELDOUT)
        + "; NAME=PATH reads a local .jsonl/.json/.parquet copy; "
        "NAME=PATH?problem=COL&answer=COL&grader=math|number|choice adds your own",
    )
    benchmark_limit: int | None = _f(None, "evaluation", "Evaluate only the first N problems of each suite", ge=1, le=1_000_000)
    num_samples: int = _f(1, "evaluation", "Answers per problem and model; pass@1 is their mean, pass@k and cons@n need n > 1", ge=1, le=256)
    eval_samples: int = _f(100, "evaluation", "Rows of the training data held out for the heldout suite", ge=0, le=100_000)
    general_prompts: bool = _f(True, "evaluation", "Also evaluate the fixed set of general reasoning prompts")
    max_new_tokens: int = _f(256, "evaluation", "Max tokens generated per answer", gt=0, le=131_072)
    max_thinking_tokens: int | None = _f(
        None, "evaluation",
        "Thinking budget: when a thought reaches this many tokens, </think> is inserted and the model answers",
        ge=1, le=131_072,
    )
    eval_batch_size: int = _f(64, "evaluation", "Rows per generation batch (base and SFT answers to the same prompts share batches)", gt=0, le=4096)
    base_answers_dir: str | None = _f(
        None, "evaluation",
        "A folder that keeps the base model's answers: a run with the same base model, engine, problems and "
        "sampling settings reads them there instead of asking again (a sweep gives its points one)")
    temperature: float | None = _f(None, "evaluation", "Sampling temperature; default 0 (greedy) with --num_samples 1, else 0.6", ge=0.0, le=5.0)
    top_p: float | None = _f(None, "evaluation", "Nucleus sampling top-p; default 1 with --num_samples 1, else 0.95", gt=0.0, le=1.0)

    # --- engine ---
    engine: Literal["hf", "openai", "llamacpp"] = _f(
        "hf", "engine",
        "What generates the answers: hf (transformers in this process), llamacpp (GGUF files through llama.cpp on "
        "CPU, converted once into the model cache; needs the llamacpp extra) or openai (an OpenAI-compatible server at "
        "--engine_url: vLLM, SGLang, transformers serve, llama.cpp, or this service's /v1; no local weights needed)",
    )
    engine_url: str | None = _f(None, "engine", "The server's base URL, e.g. http://127.0.0.1:8000/v1 (engine openai); "
                                "its API key is read from DISTILL_ENGINE_API_KEY")
    engine_base_model: str | None = _f(None, "engine", "The server's name for the base model (default: --model)")
    engine_sft_model: str | None = _f(None, "engine", "The server's name for the fine-tuned model (e.g. a vLLM --lora-modules name, or run-N)")
    engine_concurrency: int = _f(8, "engine", "Requests in flight at once (engine openai, and a teacher at --teacher_url)", ge=1, le=1024)

    # --- teacher (trace generation) ---
    teacher_model: str | None = _f(
        None, "teacher",
        "The model that writes the reasoning traces: with --teacher_url the server's name for it (run-N for a run "
        "served by this service's /v1); without, a local model generated in-process (hub id, folder, smollm2-135m, "
        "or a run's final_model / merged_model folder)")
    teacher_url: str | None = _f(None, "teacher", "An OpenAI-compatible server for the teacher (vLLM, SGLang, "
                                 "DeepSeek's API, llama.cpp, this service's /v1); its key is read from "
                                 "DISTILL_TEACHER_API_KEY and never stored")
    num_generations: int = _f(4, "teacher", "Traces the teacher writes per problem", ge=1, le=64)
    teacher_temperature: float = _f(0.6, "teacher", "The teacher's sampling temperature", ge=0.0, le=2.0)
    teacher_top_p: float = _f(0.95, "teacher", "The teacher's nucleus sampling top-p", gt=0.0, le=1.0)
    teacher_max_tokens: int = _f(4096, "teacher", "Max tokens per trace (thought and answer)", gt=0, le=262_144)
    teacher_prompt: str = _f(OPEN_R1_PROMPT, "teacher", "The user message sent to the teacher; {problem} is replaced "
                             "by the problem (the default is open-r1's)")
    teacher_system: str | None = _f(None, "teacher", "System prompt for the teacher and the training rows (default: "
                                    "the dataset's own, e.g. builtin:reasoning's; none for other data)")
    teacher_timeout: float = _f(600.0, "teacher", "Seconds a teacher request may take before it is retried", gt=0,
                                le=86_400)
    max_teacher_tokens: int | None = _f(None, "teacher", "Token budget for the whole job (prompt + completion): the "
                                        "job stops cleanly once it is spent, keeping everything finished",
                                        ge=1, le=10**13)
    keep: Literal["all_correct", "shortest_correct", "first_correct", "all"] = _f(
        "all_correct", "teacher",
        "Which traces become training rows: every distinct correct one, the shortest correct one per problem, the "
        "first correct one, or all complete traces whether right or not (unverified)")
    decontaminate: list[str] | None = _f(
        None, "teacher",
        "Benchmarks whose problems are removed before any teacher call (a shared word 8-gram): suite names or "
        "NAME=PATH as --benchmarks takes them; default every suite of --benchmarks except heldout that can be "
        "loaded; 'none' turns it off")
    dedup_jaccard: float = _f(0.9, "teacher", "Problems whose word-trigram MinHash similarity to an earlier one "
                              "reaches this are near-duplicates and dropped (1 = exact duplicates only)", gt=0.0, le=1.0)

    @field_validator("model", "dataset")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v.strip()

    @field_validator("benchmarks", mode="before")
    @classmethod
    def _split_benchmarks(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str):
            v = [part for part in v.split(",")]
        return [str(x).strip() for x in v if str(x).strip()] if isinstance(v, list | tuple) else v

    @field_validator("benchmarks")
    @classmethod
    def _known_benchmarks(cls, v: list[str]) -> list[str]:
        from distill.evaluation.suites import SuiteError, parse_benchmarks

        try:
            parse_benchmarks(v)
        except SuiteError as e:
            raise ValueError(str(e)) from None
        return v

    @field_validator("report_to", mode="before")
    @classmethod
    def _known_trackers(cls, v: Any) -> Any:
        from distill.tracking import TRACKERS

        items = [str(x).strip().lower() for x in (v.split(",") if isinstance(v, str) else v or []) if str(x).strip()]
        unknown = [x for x in items if x not in ("none", *TRACKERS)]
        if unknown:
            raise ValueError(f"unknown tracker {', '.join(map(repr, unknown))}; known: none, {', '.join(TRACKERS)}")
        trackers = list(dict.fromkeys(x for x in items if x != "none"))
        return trackers or ["none"]

    @field_validator("decontaminate", mode="before")
    @classmethod
    def _split_decontaminate(cls, v: Any) -> Any:
        if v is None:
            return None
        items = cls._split_benchmarks(v)
        return [] if isinstance(items, list) and [i.lower() for i in items] == ["none"] else items

    @field_validator("decontaminate")
    @classmethod
    def _known_decontaminate(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else cls._known_benchmarks(v)

    @field_validator("teacher_prompt")
    @classmethod
    def _has_problem(cls, v: str) -> str:
        if "{problem}" not in v:
            raise ValueError("must contain {problem}, where the problem goes")
        return v

    @field_validator("teacher_model", "teacher_url")
    @classmethod
    def _blank_is_none(cls, v: str | None) -> str | None:
        return v.strip() or None if v is not None else None

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, v: str | None) -> str | None:
        from distill.presets import PRESETS, preset_config

        if v is not None and preset_config(v) is None:
            raise ValueError(f"unknown preset {v!r}; known: {', '.join(PRESETS)}")
        return v

    @model_validator(mode="after")
    def _mode_needs(self) -> "RunConfig":
        if self.mode == "generate" and not self.teacher_model:
            raise ValueError("--mode generate needs --teacher_model (the model that writes the traces)")
        if self.teacher_url and not self.teacher_model:
            raise ValueError("--teacher_url needs --teacher_model (the server's name for the teacher)")
        if self.mode == "evaluate" and self.teacher_model:
            raise ValueError("--mode evaluate does not use --teacher_model (generate, train or all do)")
        if self.engine == "openai" and self.mode != "generate":
            if not self.engine_url:
                raise ValueError("--engine openai needs --engine_url (the server's base URL, e.g. http://HOST:8000/v1)")
            if self.mode != "train" and not self.engine_sft_model:
                raise ValueError("--engine openai needs --engine_sft_model (the server's name for the fine-tuned model)")
        elif self.mode == "evaluate" and not self.sft_model_path:
            raise ValueError("--mode evaluate needs --sft_model_path (an adapter or merged model folder), "
                             "or --engine openai with --engine_sft_model")
        return self

    # --- helpers ---
    @property
    def generates_traces(self) -> bool:
        """The run asks a teacher for traces first (mode generate, or train/all with a teacher)."""
        return self.teacher_model is not None and self.mode != "evaluate"

    @property
    def effective_max_samples(self) -> int | None:
        if self.max_samples is None and self.dataset.startswith("builtin:"):
            from distill.data.sources import DEFAULT_BUILTIN_ROWS

            return DEFAULT_BUILTIN_ROWS
        return self.max_samples

    @property
    def sampling_temperature(self) -> float:
        return self.temperature if self.temperature is not None else (0.6 if self.num_samples > 1 else 0.0)

    @property
    def sampling_top_p(self) -> float:
        return self.top_p if self.top_p is not None else (0.95 if self.num_samples > 1 else 1.0)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def field_groups() -> dict[str, list[str]]:
    """Field names by group, in declaration order (for --help and the dashboard form)."""
    groups: dict[str, list[str]] = {}
    for name, info in RunConfig.model_fields.items():
        group = (info.json_schema_extra or {}).get("group", "other")  # type: ignore[union-attr]
        groups.setdefault(group, []).append(name)
    return groups


def validation_error(err: ValidationError) -> ConfigError:
    """Pydantic's errors as a ConfigError: every (field, message), and one line naming the flags."""
    issues, parts = [], []
    for e in err.errors():
        loc = str(e["loc"][0]) if e["loc"] else ""
        msg = e["msg"].removeprefix("Value error, ")
        if not loc:  # a model-level rule names its flag in the message ("--mode evaluate needs --sft_model_path")
            flags = [w.removeprefix("--") for w in msg.split() if w.startswith("--")]
            loc = flags[-1] if flags else ""
            parts.append(msg)
        else:
            got = f" (got {e['input']!r})" if "input" in e and not isinstance(e["input"], dict) else ""
            parts.append(f"--{loc}: {msg}{got}")
        issues.append((loc, msg))
    return ConfigError("; ".join(parts), issues)


def read_config_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config: file not found: {p}")
    try:
        text = p.read_text()
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise ConfigError(f"--config: {p} is not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {first_line(e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config: {p} must hold a mapping of field: value, got {type(data).__name__}")
    return data


def build_config(overrides: dict[str, Any] | None = None, config_file: str | Path | None = None) -> RunConfig:
    """Defaults < preset < config file < explicit overrides (CLI flags or API body)."""
    from distill.presets import PRESETS, preset_config

    values: dict[str, Any] = {}
    if config_file:
        values.update(read_config_file(config_file))
    values.update({k: v for k, v in (overrides or {}).items()})
    preset = values.get("preset")
    merged: dict[str, Any] = {}
    if preset is not None:
        if preset_config(preset) is None:
            raise ConfigError(f"--preset: unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        merged.update(preset_config(preset))
    merged.update(values)
    try:
        return RunConfig(**merged)
    except ValidationError as e:
        raise validation_error(e) from None
