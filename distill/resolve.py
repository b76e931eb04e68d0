"""From what a user gave (flags, a config file, a preset, an API body) to the final ``RunConfig``, once.

Presets are merged, every field validated, local paths checked (and, on the service, kept inside
DISTILL_HOME and made absolute), local-or-hub decided, the suites checked. The service stores the
result; the worker and the training ranks load it as it is. Every problem is a ``ConfigError`` that
lists each bad field.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from distill.config import (
    BUILTIN_DATASET,
    EMBEDDED_MODEL,
    ConfigError,
    RunConfig,
    build_config,
)
from distill.hub import where

BUILTIN_MODELS = (EMBEDDED_MODEL, "tiny-random")


def inside(home: Path, raw: str, field: str) -> Path:
    """The absolute path ``raw`` names under ``home`` (relative paths are relative to it); a path that
    leaves ``home`` is refused, since the service's clients may only use its own folder."""
    text = (raw or "").strip()
    home = home.resolve()
    problem = ("must not be empty" if not text else "must not contain NUL characters" if "\x00" in text
               else f"must be a path inside DISTILL_HOME ({home}); '~' is not expanded" if text.startswith("~")
               else "must not contain '..' (paths stay inside DISTILL_HOME)" if ".." in Path(text).parts else None)
    if problem is None:
        full = (Path(text) if Path(text).is_absolute() else home / text).resolve(strict=False)
        if full.is_relative_to(home):
            return full
        problem = f"must stay inside DISTILL_HOME ({home}); got {text!r}"
    raise ConfigError(f"--{field}: {problem}", [(field, problem)])


def _local(value: str, field: str, home: Path | None, must_be_dir: bool = False) -> str:
    path = inside(home, value, field) if home is not None else Path(value).expanduser()
    if not (path.is_dir() if must_be_dir else path.exists()):
        what = "folder" if must_be_dir else "file or folder"
        raise ConfigError(f"--{field}: {what} not found: {value}", [(field, f"{what} not found: {value}")])
    return str(path) if home is not None else value


def _suites(benchmarks: list[str], home: Path | None, field: str) -> list[str]:
    from distill.evaluation.suites import (
        SuiteError,
        check_suite,
        format_spec,
        parse_benchmarks,
    )

    try:
        specs = parse_benchmarks(benchmarks)
    except SuiteError as e:
        raise ConfigError(f"--{field}: {e}", [(field, str(e))]) from None
    out, problems = [], []
    for spec in specs:  # every bad suite is named, not only the first
        try:
            if spec.path is not None and home is not None:
                spec = replace(spec, path=str(inside(home, spec.path, field)))
            check_suite(spec)
            out.append(format_spec(spec))
        except (SuiteError, ConfigError) as e:
            problems.append(e.issues[0][1] if isinstance(e, ConfigError) else str(e))
    if problems:
        raise ConfigError(f"--{field}: {'; '.join(problems)}", [(field, p) for p in problems])
    return out


def _problem_source(value: str, home: Path | None) -> str:
    """A trace-generation ``--dataset``: its file made absolute (inside ``home`` on the service), then checked by
    reading its first problem."""
    from distill.evaluation.suites import parse_benchmarks
    from distill.traces.problems import ProblemError, check_problems, parse_source

    try:
        source = parse_source(value)
        text = value
        if source.suite is not None and "=" in value:
            spec = parse_benchmarks([value.split("?", 1)[0]])[0]
            if spec.path is not None and home is not None:
                text = value.replace(spec.path, str(inside(home, spec.path, "dataset")), 1)
        elif source.suite is None and where(source.name, home) == "local":
            text = value.replace(source.name, _local(source.name, "dataset", home), 1)
        check_problems(text)
    except (ProblemError, ValueError) as e:
        message = str(e).removeprefix("--dataset: ")
        raise ConfigError(f"--dataset: {message}", [("dataset", message)]) from None
    return text


def _teacher(config: RunConfig, home: Path | None) -> str | None:
    """A local teacher's folder, checked; a served teacher's name as it is (the server is asked at the start)."""
    name = config.teacher_model
    if name is None or config.teacher_url or name in BUILTIN_MODELS or where(name, home) != "local":
        return name
    return _local(name, "teacher_model", home, must_be_dir=True)


def uses_dataset(config: RunConfig) -> bool:
    """Training reads it; evaluation only for the heldout suite."""
    from distill.evaluation.suites import asks_heldout

    return config.mode != "evaluate" or asks_heldout(config.benchmarks)


def _checked(errors: list[ConfigError], changes: dict[str, Any], key: str, check: Any, *args: Any) -> None:
    """``changes[key] = check(*args)``; a ConfigError is kept in ``errors`` so that every bad field is named."""
    try:
        changes[key] = check(*args)
    except ConfigError as e:
        errors.append(e)


def resolve_config(values: dict[str, Any] | None = None, config_file: str | Path | None = None, *,
                   home: Path | None = None) -> RunConfig:
    """The final RunConfig. With ``home`` (the service), relative paths are relative to it and none may leave it."""
    config = build_config(values, config_file)
    changes: dict[str, Any] = {}
    errors: list[ConfigError] = []
    ds = config.dataset
    kind = where(ds, home)
    if kind == "builtin" and ds != BUILTIN_DATASET and not config.generates_traces:
        errors.append(ConfigError(f"--dataset: unknown built-in dataset {ds!r}; known: {BUILTIN_DATASET}",
                                  [("dataset", f"unknown built-in dataset {ds!r}; known: {BUILTIN_DATASET}")]))
    if config.generates_traces:
        _checked(errors, changes, "dataset", _problem_source, ds, home)
        _checked(errors, changes, "teacher_model", _teacher, config, home)
        if config.decontaminate:
            _checked(errors, changes, "decontaminate", _suites, config.decontaminate, home, "decontaminate")
    elif kind == "local" and uses_dataset(config):
        _checked(errors, changes, "dataset", _local, ds, "dataset", home)
    if config.model not in BUILTIN_MODELS and where(config.model, home) == "local":
        _checked(errors, changes, "model", _local, config.model, "model", home, True)
    if config.sft_model_path:
        _checked(errors, changes, "sft_model_path", _local, config.sft_model_path, "sft_model_path", home, True)
    for key in ("output_dir", "base_answers_dir"):
        if getattr(config, key) and home is not None:
            _checked(errors, changes, key, lambda k=key: str(inside(home, getattr(config, k), k)))
    if config.mode not in ("train", "generate"):  # generate reads them only to decontaminate, where it can
        _checked(errors, changes, "benchmarks", _suites, config.benchmarks, home, "benchmarks")
    if errors:
        raise ConfigError("; ".join(str(e) for e in errors), [issue for e in errors for issue in e.issues])
    return config.model_copy(update=changes) if changes else config
