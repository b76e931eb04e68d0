"""``export_run``: a finished run's model out to GGUF, Ollama or the Hub, under the run folder's ``exports/``.

Each export is one folder ``exports/TO-YYYYmmdd-HHMMSS/`` with its files and ``export.json`` (what was asked,
what was written, each file read back). It is written in a hidden temporary folder and renamed into place only
when everything succeeded: a failed export leaves nothing that looks done. Every refusable input (not a run,
unfinished, no model, unknown quantization, no token) is refused before any conversion starts.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from distill.config import RunConfig
from distill.errors import RunCancelled, UserError
from distill.export import gguf, hub, ollama
from distill.export.card import model_card
from distill.rundir import RunDir, model_kind

log = logging.getLogger("distill")
TARGETS = ("gguf", "ollama", "hub")
EXPORTS = "exports"
HUB_WEIGHTS = ("merged", "adapter")


class ExportError(UserError, RuntimeError):
    """This run cannot be exported as asked; one line. ``field``: the request's field at fault, if one is."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class ExportCancelled(RunCancelled):
    """The export was asked to stop; nothing of it is listed (its hidden folder is removed)."""


@dataclass
class ExportHooks:
    """What a caller (the service's worker) follows: each step as it starts, with the share of the steps done, and
    a stop flag read between steps (a conversion or an upload in progress is not interrupted)."""

    on_stage: Callable[[str, float], None] = lambda stage, progress: None
    should_cancel: Callable[[], bool] = lambda: False

    def step(self, stage: str, done: int, total: int) -> None:
        if self.should_cancel():
            raise ExportCancelled(f"export cancelled before {stage}")
        self.on_stage(stage, round(done / max(total, 1), 4))


@dataclass
class ExportRequest:
    to: str
    quants: list[str] = field(default_factory=list)
    repo_id: str | None = None
    private: bool = True
    revision: str | None = None
    create_pr: bool = False
    weights: str = "merged"  # hub: the merged model (loads alone) or the LoRA adapter


def run_config(run: RunDir) -> RunConfig:
    if not run.config.is_file():
        raise ExportError(f"{run.root} is not a run folder (no config.json)")
    return RunConfig.model_validate(json.loads(run.config.read_text()))


def full_model(run: RunDir, config: RunConfig) -> Path:
    """The folder of full weights: the merged model of a LoRA run, the final model of a full fine-tune."""
    if config.mode in ("evaluate", "generate"):
        what = "a benchmark job or an evaluation" if config.mode == "evaluate" else "a trace generation run"
        raise ExportError(f"{run.root.name} is {what} (mode {config.mode}): it has no model of its own to export")
    if not run.timings.is_file():
        raise ExportError(f"{run.root.name} has not finished (no timings.json): export it once it has completed")
    folder = run.merged_model if config.use_lora else run.final_model
    if model_kind(folder) != "full":
        raise ExportError(f"{run.root.name} has no saved model at {folder}")
    return folder


def check_request(run: RunDir, request: ExportRequest) -> tuple[RunConfig, Path, list[str]]:
    """Everything refusable, refused now: (the run's config, its full model, the quantizations)."""
    if request.to not in TARGETS:
        raise ExportError(f"unknown export target {request.to!r}: use one of {', '.join(TARGETS)}")
    config = run_config(run)
    model = full_model(run, config)
    try:
        quants = gguf.check_quants(request.quants) if request.to != "hub" or request.quants else []
    except gguf.GGUFError as e:
        raise ExportError(str(e), field="quants") from None
    if quants:
        gguf.check_converter()
    if request.to == "hub":
        if not request.repo_id or request.repo_id.count("/") != 1:
            raise ExportError(f"--repo-id must be owner/name, got {request.repo_id!r}", field="repo_id")
        if request.create_pr and request.revision:
            raise ExportError("--create-pr opens a pull request against the default branch: drop --revision",
                              field="revision")
        if request.weights not in HUB_WEIGHTS:
            raise ExportError(f"unknown --weights {request.weights!r}: use merged or adapter", field="weights")
        if request.weights == "adapter" and model_kind(run.final_model) != "adapter":
            raise ExportError(f"{run.root.name} has no LoRA adapter (a full fine-tune): export --weights merged",
                              field="weights")
        hub.hub_token()
    return config, model, quants


def _copy_model(source: Path, dest: Path) -> None:
    for p in source.iterdir():
        if p.is_file() and p.name != "README.md":
            shutil.copy2(p, dest / p.name)


def plan_steps(request: ExportRequest, quants: list[str]) -> list[str]:
    """The export's steps in order, as ``ExportHooks.on_stage`` reports them."""
    steps = [("converting" if q in gguf.CONVERTER_TYPES else "quantizing") for q in quants]
    if request.to == "ollama":
        steps.append("modelfile")
    if request.to == "hub":
        steps += ["staging", "uploading"]
    return steps


def export_run(run_root: Path, request: ExportRequest, hooks: ExportHooks | None = None) -> dict[str, Any]:
    """Do the export; its manifest (also in ``export.json``)."""
    hooks = hooks or ExportHooks()
    run = RunDir(Path(run_root))
    config, model, quants = check_request(run, request)
    steps = plan_steps(request, quants)
    done = iter(range(len(steps)))

    def step(stage: str) -> None:
        hooks.step(stage, next(done), len(steps))

    token = hub.hub_token() if request.to == "hub" else None
    exports = run.root / EXPORTS
    exports.mkdir(exist_ok=True)
    name = f"{request.to}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"
    stem = config.name or run.root.name
    with tempfile.TemporaryDirectory(dir=exports, prefix=f".{name}.") as tmp:
        staged = Path(tmp)
        manifest: dict[str, Any] = {"name": name, "to": request.to, "run": run.root.name,
                                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                    "quants": quants, "ggufs": []}
        if quants:
            log.info("Converting %s to GGUF (%s) with llama.cpp's converter", model, ", ".join(quants))
            manifest["ggufs"] = gguf.write_ggufs(model, staged, stem, quants, on_quant=lambda q, kind: step(kind))
        if request.to == "ollama":
            step("modelfile")
            _write_modelfile(run, config, model, staged, manifest)
        if request.to == "hub":
            step("staging")
            _stage_hub(run, config, request, staged)
            step("uploading")
            log.info("Uploading %s to the Hub as %s", staged, request.repo_id)
            manifest["hub"] = {"repo_id": request.repo_id, "weights": request.weights,
                               **hub.upload(staged, request.repo_id, request.private, request.revision,
                                            request.create_pr, token or "")}
        manifest["files"] = sorted(str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file())
        (staged / hub.MANIFEST).write_text(json.dumps(manifest, indent=2))
        target = exports / name
        while target.exists():  # two exports in the same second
            target = target.with_name(target.name + "-again")
        staged.rename(target)
        staged.mkdir()  # TemporaryDirectory removes its (now empty) folder
    log.info("Exported to %s", target)
    return {**manifest, "path": str(target)}


def _write_modelfile(run: RunDir, config: RunConfig, model: Path, staged: Path, manifest: dict[str, Any]) -> None:
    from distill.pipeline import system_prompt

    first = manifest["ggufs"][0]
    system = system_prompt(config) or ollama.template_default_system(first["chat_template"])
    (staged / "Modelfile").write_text(ollama.modelfile(first["file"], system, first.get("context_length")))
    manifest["ollama"] = {"from": first["file"], "system": system,
                          "create": f"ollama create {config.name or run.root.name} -f Modelfile"}


def _stage_hub(run: RunDir, config: RunConfig, request: ExportRequest, staged: Path) -> None:
    """The repository's files: the weights and tokenizer, the card, report.md and evaluation_results.json."""
    source = run.merged_model if request.weights == "merged" and config.use_lora else run.final_model
    _copy_model(source, staged)
    model_card(run, source, config).save(staged / "README.md")
    for extra in (run.report, run.evaluation, run.data_report):
        if extra.is_file():
            shutil.copy2(extra, staged / extra.name)


def list_exports(run_root: Path) -> list[dict[str, Any]]:
    """The finished exports of a run, newest first (a hidden folder is one still being written, or abandoned)."""
    folder = Path(run_root) / EXPORTS
    found = [json.loads(m.read_text()) for m in folder.glob(f"*/{hub.MANIFEST}") if not m.parent.name.startswith(".")]
    return sorted(found, key=lambda m: m["name"], reverse=True)
