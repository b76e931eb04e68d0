"""Experiment trackers (``--report_to``): trackio, MLflow, TensorBoard, Weights & Biases.

Each tracker is driven through its own Python API with explicit settings, not through transformers'
``report_to`` callbacks: those read their settings from process-wide environment variables (``MLFLOW_*``,
``WANDB_*``, ``TENSORBOARD_LOGGING_DIR``) and MLflow's fluent API keeps one active run per process, so in a
Celery worker that runs one job after another a setting or an open run would leak into the next job.
Here MLflow goes through ``MlflowClient(tracking_uri)``, TensorBoard through a ``SummaryWriter(log_dir)``,
W&B through the ``Run`` object ``wandb.init`` returns, trackio through its ``Run`` object.

The one process-wide setting is trackio's store folder, which trackio keeps in module constants read from
``TRACKIO_DIR`` at import: ``trackio_store`` sets them at the start of every tracked run from that run's
setting (``$TRACKIO_DIR``, else ``$DISTILL_HOME/trackio``), so no earlier run's folder carries over.

What each run went to is written to the run folder's ``tracking.json`` (no database column): a benchmark job on
the run (``--mode evaluate`` on ``RUN/final_model``) reopens the same tracker runs and logs into them. Only the
resolved configuration is logged (it holds no token or key: those are read from the environment), with any
``user:password@`` taken out of URLs. A tracker that is not installed or cannot be reached: the run goes on,
and one warning line names it; an MLflow server is checked with one short request first (``check_reachable``), as
MLflow's own client retries for minutes. The service shows trackio's dashboard on this same store at ``/trackio``
(``backend/trackio_mount.py``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distill.errors import first_line

log = logging.getLogger("distill")
TRACKERS = ("trackio", "mlflow", "tensorboard", "wandb")
TRACKING_FILE = "tracking.json"
PROJECT = "distill"  # the trackio / W&B project and the MLflow experiment: every run of this studio in one
# The curve point's fields (distill/training.py: MetricsCallback) and their names in the trackers.
POINT_METRICS = {"loss": "train/loss", "ce": "train/ce", "kl": "train/kl", "lr": "train/learning_rate",
                 "grad_norm": "train/grad_norm", "tokens_per_s": "train/tokens_per_s",
                 "trained_tokens": "train/trained_tokens", "eval_loss": "eval/loss", "eval_ce": "eval/ce",
                 "eval_kl": "eval/kl"}
DIAGNOSTICS = ("tokens_p50", "tokens_p95", "truncated_pct", "think_closed_pct", "looping_pct", "forced_pct")


def home() -> Path:
    return Path(os.environ.get("DISTILL_HOME", "outputs")).resolve()


def redacted(value: Any) -> Any:
    """The value with ``user:password@`` removed from any URL in it (nested lists and dicts too)."""
    if isinstance(value, str):
        return re.sub(r"(\w+://)[^/@\s]+@", r"\1", value)
    if isinstance(value, dict):
        return {k: redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v) for v in value]
    return value


def flat_params(config: dict[str, Any]) -> dict[str, str]:
    """The configuration as flat string parameters (MLflow, TensorBoard's hparams text)."""
    return {k: json.dumps(v) if isinstance(v, list | dict) else str(v) for k, v in redacted(config).items()}


class Tracker:
    """One tracker's run: ``log`` numbers at a step, keep ``artifact`` files, ``finish``. ``info`` is what
    ``tracking.json`` keeps to reopen it (and to link to it)."""

    name = ""

    def log(self, metrics: dict[str, float], step: int | None) -> None:
        raise NotImplementedError

    def artifact(self, path: Path) -> None:  # trackers that keep no files ignore it
        return None

    def finish(self) -> None:
        return None

    info: dict[str, Any] = {}


class TrackioTracker(Tracker):
    name = "trackio"

    def __init__(self, project: str, run_name: str, config: dict[str, Any], previous: dict[str, Any] | None):
        import trackio

        TRACKIO_DIR = trackio_store()

        name = previous["run"] if previous else run_name
        self.run = trackio.init(project=project, name=name, config=redacted(config) if not previous else None,
                                resume="must" if previous else "never", space_id=None, embed=False,
                                auto_log_gpu=False, auto_log_cpu=False)
        self.info = {"project": project, "run": self.run.name, "dir": str(TRACKIO_DIR),
                     "db": str(Path(TRACKIO_DIR) / f"{project}.db")}

    def log(self, metrics, step):
        self.run.log(metrics, step=step)

    def finish(self):
        self.run.finish()


def trackio_folder(distill_home: Path | None = None) -> Path:
    """trackio's store: ``$TRACKIO_DIR`` if the user set it, else ``DISTILL_HOME/trackio``. Runs log there and the
    service's ``/trackio`` dashboard reads it."""
    return Path(os.environ.get("TRACKIO_DIR") or (distill_home or home()) / "trackio")


def trackio_store(folder: Path | None = None) -> Path:
    """Point trackio at ``folder`` (default ``trackio_folder()``). trackio reads its folder into module constants at
    import (and is often imported by TRL before any run starts), so the constants are set here, each time, from this
    run's setting: a stale one never carries over."""
    folder = folder or trackio_folder()
    folder.mkdir(parents=True, exist_ok=True)
    for module in ("trackio", "trackio.utils", "trackio.sqlite_storage", "trackio.bucket_storage"):
        mod = __import__(module, fromlist=["_"])
        if hasattr(mod, "TRACKIO_DIR"):
            mod.TRACKIO_DIR = folder
    return folder


class MLflowTracker(Tracker):
    name = "mlflow"

    def __init__(self, project: str, run_name: str, config: dict[str, Any], previous: dict[str, Any] | None):
        from mlflow.tracking import MlflowClient

        uri = previous["tracking_uri"] if previous else (
            os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home() / 'mlruns.db'}")
        if uri.startswith(("http://", "https://")):
            check_reachable(uri)
        self.client = MlflowClient(tracking_uri=uri)
        if previous:
            self.run_id, experiment_id = previous["run_id"], previous["experiment_id"]
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            found = self.client.get_experiment_by_name(project)
            # A store of our own keeps its files beside it (MLflow's default is ./mlruns, wherever the worker runs).
            where = None if os.environ.get("MLFLOW_TRACKING_URI") else (home() / "mlartifacts").as_uri()
            experiment_id = found.experiment_id if found else self.client.create_experiment(project, where)
            self.run_id = self.client.create_run(experiment_id, run_name=run_name).info.run_id
            params = flat_params(config)
            from mlflow.entities import Param

            items = [Param(k, v[:6000]) for k, v in params.items()]
            for i in range(0, len(items), 100):
                self.client.log_batch(self.run_id, params=items[i:i + 100])
        self.info = {"tracking_uri": uri, "experiment_id": experiment_id, "run_id": self.run_id}

    def log(self, metrics, step):
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step or 0) for k, v in metrics.items()])

    def artifact(self, path):
        self.client.log_artifact(self.run_id, str(path))

    def finish(self):
        self.client.set_terminated(self.run_id)


REACH_TIMEOUT_S = 5.0


def check_reachable(uri: str) -> None:
    """Raise ``ConnectionError`` naming ``uri`` (without credentials) when no server answers there within
    ``REACH_TIMEOUT_S``. MLflow's client retries a refused connection with backoff for minutes (7 retries, factor 2,
    120 s timeout), and those settings exist only as process-wide environment variables (``MLFLOW_HTTP_REQUEST_*``):
    one short request here finds an unreachable server first. Any HTTP answer, even 404 or 401, or a TLS error (the
    client may be set up to accept that certificate) means a server is there: MLflow takes it from there."""
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=REACH_TIMEOUT_S, allow_redirects=False)
    except requests.exceptions.SSLError:
        return
    except (requests.ConnectionError, requests.Timeout) as e:
        raise ConnectionError(f"cannot reach {redacted(uri)} ({type(e).__name__} within {REACH_TIMEOUT_S:g} s)") from e


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def __init__(self, project: str, run_name: str, config: dict[str, Any], previous: dict[str, Any] | None,
                 run_root: Path):
        from torch.utils.tensorboard import SummaryWriter

        logdir = Path(previous["logdir"]) if previous else run_root / "tensorboard"
        self.writer = SummaryWriter(log_dir=str(logdir))
        if not previous:
            self.writer.add_text("config", "```json\n" + json.dumps(redacted(config), indent=2) + "\n```")
        self.info = {"logdir": str(logdir)}

    def log(self, metrics, step):
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def finish(self):
        self.writer.close()


class WandbTracker(Tracker):
    name = "wandb"

    def __init__(self, project: str, run_name: str, config: dict[str, Any], previous: dict[str, Any] | None,
                 run_root: Path):
        import wandb

        # Offline unless the user logged in (WANDB_API_KEY or wandb login) and asked for online with WANDB_MODE.
        mode = previous["mode"] if previous else (os.environ.get("WANDB_MODE") or "offline")
        settings = wandb.Settings(mode=mode, silent=True, console="off", x_disable_stats=True)
        self.run = wandb.init(project=project, name=run_name, dir=str(run_root), settings=settings,
                              config=None if previous else redacted(config), reinit="create_new",
                              id=previous["id"] if previous else None, resume="allow" if previous else None)
        self.info = {"project": project, "id": self.run.id, "mode": mode, "dir": str(Path(self.run.dir).parent)}

    def log(self, metrics, step):
        self.run.log(metrics, step=step)

    def artifact(self, path):
        self.run.save(str(path), base_path=str(path.parent), policy="now")

    def finish(self):
        self.run.finish()


def _open(name: str, project: str, run_name: str, config: dict[str, Any], previous: dict[str, Any] | None,
          run_root: Path) -> Tracker:
    if name == "trackio":
        return TrackioTracker(project, run_name, config, previous)
    if name == "mlflow":
        return MLflowTracker(project, run_name, config, previous)
    if name == "tensorboard":
        return TensorBoardTracker(project, run_name, config, previous, run_root)
    return WandbTracker(project, run_name, config, previous, run_root)


def _warn(name: str, what: str, err: BaseException) -> None:
    first = redacted(first_line(err))  # no password from a URL
    hint = f" (pip install {name})" if isinstance(err, ImportError) else ""
    log.warning("Tracker %s %s, the run goes on without it: %s%s", name, what, first[:300], hint)


class TrackedRun:
    """The trackers of one run (none: every call does nothing). Failures after opening are warned once each."""

    def __init__(self, trackers: list[Tracker], file: Path | None):
        self.trackers, self.file = trackers, file
        self.step = 0

    def _each(self, what: str, fn: Callable[[Tracker], None]) -> None:
        for t in list(self.trackers):
            try:
                fn(t)
            except Exception as e:  # noqa: BLE001 - a tracker failing never stops the run
                _warn(t.name, f"failed to {what}", e)
                self.trackers.remove(t)

    def log_point(self, point: dict[str, Any]) -> None:
        """A training curve point (``metrics.jsonl``'s fields) at its step."""
        metrics = {POINT_METRICS[k]: float(v) for k, v in point.items()
                   if k in POINT_METRICS and isinstance(v, int | float) and math.isfinite(v)}
        if metrics:
            self.step = max(self.step, int(point.get("step", 0)))
            self._each("log a training point", lambda t: t.log(metrics, self.step))

    def log_evaluation(self, results: dict[str, Any], files: list[Path]) -> None:
        """Each suite's pass@1 with its interval, SFT - base with its p-value, the diagnostics; the files kept."""
        metrics = evaluation_metrics(results)
        if metrics:
            self._each("log the evaluation", lambda t: t.log(metrics, self.step))
        for f in files:
            if f.is_file():
                self._each(f"keep {f.name}", lambda t, f=f: t.artifact(f))

    def finish(self) -> None:
        self._each("finish", lambda t: t.finish())
        self.trackers = []

    def on_metrics(self, hook: Callable[[dict], None] | None) -> Callable[[dict], None] | None:
        """``hook`` that also sends each point to the trackers."""
        if not self.trackers:
            return hook

        def both(point: dict) -> None:
            self.log_point(point)
            if hook:
                hook(point)
        return both


def evaluation_metrics(results: dict[str, Any]) -> dict[str, float]:
    """``SUITE/MODEL/pass_at_1`` (with ``_ci_low``/``_ci_high`` and the diagnostics), ``SUITE/delta_pass_at_1``,
    ``SUITE/p_value`` (``@`` is not allowed in MLflow's metric names)."""
    out: dict[str, float] = {}
    for suite, block in (results.get("benchmarks") or {}).items():
        for model in ("base", "sft"):
            m = block.get(model) or {}
            values = {"pass_at_1": m.get("pass@1"), **{k: m.get(k) for k in DIAGNOSTICS}}
            ci = m.get("pass@1_ci") or [None, None]
            values.update({"pass_at_1_ci_low": ci[0], "pass_at_1_ci_high": ci[1]})
            out.update({f"{suite}/{model}/{k}": float(v) for k, v in values.items() if isinstance(v, int | float)})
        lo, hi = (block.get("delta_ci") or [None, None])[:2]
        for k, v in {"delta_pass_at_1": block.get("delta_pass@1"), "delta_ci_low": lo, "delta_ci_high": hi,
                     "p_value": block.get("p_value")}.items():
            if isinstance(v, int | float):
                out[f"{suite}/{k}"] = float(v)
    return out


def tracking_file(run_root: Path) -> Path:
    return Path(run_root) / TRACKING_FILE


def read_tracking(run_root: Path) -> dict[str, Any] | None:
    f = tracking_file(run_root)
    try:
        return json.loads(f.read_text()) if f.is_file() else None
    except ValueError:
        return None


def parent_run_folder(config: Any) -> Path | None:
    """The run a ``--mode evaluate`` job evaluates (``RUN/final_model`` or ``RUN/merged_model``), when that run
    was tracked: the job logs into the same tracker runs."""
    if config.mode != "evaluate" or not config.sft_model_path:
        return None
    parent = Path(config.sft_model_path).parent
    return parent if read_tracking(parent) else None


def open_tracking(config: Any, run_root: Path) -> TrackedRun:
    """The run's trackers, opened now; a benchmark job reopens its parent run's. ``tracking.json`` written."""
    parent = parent_run_folder(config)
    previous = (read_tracking(parent) or {}).get("trackers", {}) if parent else {}
    names = list(previous) if parent else [n for n in config.report_to if n != "none"]
    if not names:
        return TrackedRun([], None)
    project = (previous.get("trackio") or previous.get("wandb") or {}).get("project") or PROJECT
    run_name = config.name or Path(run_root).name
    trackers: list[Tracker] = []
    for name in names:
        try:
            trackers.append(_open(name, project, run_name, config.to_json(), previous.get(name), Path(run_root)))
        except Exception as e:  # noqa: BLE001 - missing, unreachable or refused: the run goes on
            _warn(name, "is not installed" if isinstance(e, ImportError) else "could not be opened", e)
    folder = parent or Path(run_root)
    record = {"project": project, "run_name": run_name,
              "trackers": {**previous, **{t.name: t.info for t in trackers}}}
    if trackers:
        tracking_file(folder).write_text(json.dumps(record, indent=2))
        log.info("Tracking in %s", ", ".join(f"{t.name} ({_where(t)})" for t in trackers))
    return TrackedRun(trackers, tracking_file(folder))


def _where(t: Tracker) -> str:
    i = t.info
    return i.get("db") or i.get("run_id") and f"run {i['run_id']} at {i['tracking_uri']}" or i.get("logdir") \
        or i.get("dir") or ""
