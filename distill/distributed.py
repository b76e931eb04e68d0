"""Training on several processes (``--num_gpus N``, N > 1): DDP through ``accelerate launch``.

The pipeline does not train in-process; ``train_distributed`` writes the job to ``<run>/ddp/``
(``job.json``: the configuration; ``rows.json``: the prepared rows, so every rank trains on the same
rows the pipeline prepared and logged) and starts

    python -m accelerate.commands.accelerate_cli launch --multi_gpu --num_processes N --num_machines 1
        --mixed_precision no --dynamo_backend no --main_process_port 0 -m distill.distributed <run>/ddp/job.json

(``--multi_gpu`` is accelerate's local multi-process launcher, torchrun underneath. Without CUDA the same
command trains on the CPU: the Trainer (``use_cpu``) joins the ranks with the gloo backend, each rank with
``cores // N`` threads. accelerate's ``--cpu --num_processes N`` would start one process, not N: on CPU
it counts on mpirun.) ``--mixed_precision no`` only keeps accelerate quiet: the Trainer's bf16 setting
decides. Each rank runs ``main()``: the same ``distill.training.train`` as the single-process path, and
the Trainer/TRL do the rest (DistributedSampler, gradient all-reduce).

Data and batch: each rank gets 1/N of the training rows per epoch, so one optimizer step consumes
``batch_size x gradient_accumulation x N`` rows (the effective batch) and an epoch has about 1/N of the
single-process optimizer steps; the learning rate is not rescaled.

While the ranks train, the parent forwards their output lines to the ``distill`` logger and the points
rank 0 appends to ``metrics.jsonl`` to ``on_metrics``. Rank 0 saves the model where the single-process
path does (``final_model``) and writes ``ddp/outcome.json``. Cancelling asks the
ranks to stop at their next step and save a checkpoint (``ddp/cancel``, agreed through an all-reduce so
that all ranks stop at the same step); ranks still alive after ``CANCEL_GRACE_S`` get SIGTERM, then
SIGKILL.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill.config import RunConfig
from distill.errors import RunCancelled, UserError
from distill.rundir import DDPFiles, RunDir

if TYPE_CHECKING:
    from distill.training import TrainOutcome

log = logging.getLogger("distill")

POLL_S = 0.5
CANCEL_GRACE_S = 30.0  # for the ranks to reach their next step and save a checkpoint
KILL_GRACE_S = 5.0  # between SIGTERM and SIGKILL
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LINE = re.compile(rf"^({'|'.join(LEVELS)}) (.*)$")
_ERROR = re.compile(r"^(?:\[rank\d+\]:\s*)?((?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Interrupt)\b.*)$")
_LAUNCHER_ERRORS = ("ChildFailedError", "CalledProcessError")


class DistributedTrainingError(UserError, RuntimeError):
    """The training processes failed; the message is one line (exit code and their last error)."""


def is_distributed_rank() -> bool:
    return "LOCAL_RANK" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1


def launches_processes(config: RunConfig) -> bool:
    """True where training must be started as N processes (not when this already is one of them)."""
    return config.num_gpus > 1 and not is_distributed_rank()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def launch_command(n: int, job: Path) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", "--multi_gpu",
            "--num_processes", str(n), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", "0",  # a free port: several runs may train on one host
            "-m", "distill.distributed", str(job)]


def _die_with_parent() -> None:
    """In the launcher: SIGTERM if the pipeline's process dies (Linux); torchrun then stops the ranks."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _last_error(lines: collections.deque[str]) -> str:
    """The ranks' exception line (not torchrun's or accelerate's wrapper around it), else the last line."""
    fallback = ""
    for line in reversed(lines):
        m = _ERROR.match(line.strip())
        if m and not any(w in line for w in _LAUNCHER_ERRORS):
            return m.group(1)
        fallback = fallback or line.strip()
    return fallback


def _terminate(launcher: subprocess.Popen, ranks: list[Any]) -> None:
    """SIGTERM the launcher and every rank (torchrun starts each rank in its own session, so a process
    group signal would not reach them), then SIGKILL what is left."""
    import psutil

    def send(procs: list[psutil.Process], sig: int) -> None:
        for p in procs:
            with contextlib.suppress(psutil.Error):  # gone already
                p.send_signal(sig)

    try:
        procs = [psutil.Process(launcher.pid), *psutil.Process(launcher.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        procs = []
    known = {p.pid for p in procs}
    procs += [p for p in ranks if p.pid not in known]
    send(procs, signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=KILL_GRACE_S)
    send(alive, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=KILL_GRACE_S)
    launcher.wait()


class _MetricsTail:
    """Forwards the points rank 0 appends to metrics.jsonl (complete lines only)."""

    def __init__(self, path: Path, on_metrics: Callable[[dict], None] | None):
        self.path, self.on_metrics = path, on_metrics
        self.offset = path.stat().st_size if path.exists() else 0  # a resumed run keeps its earlier points

    def poll(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].splitlines():
            if line.strip() and self.on_metrics:
                self.on_metrics(json.loads(line))


def train_distributed(config: RunConfig, model_path: str, train_rows: list[dict], val_rows: list[dict],
                      out_dir: Path, on_metrics: Callable[[dict], None] | None = None,
                      should_cancel: Callable[[], bool] | None = None) -> TrainOutcome:
    """Train in ``config.num_gpus`` processes; a TrainOutcome whose ``model`` is None (rank 0 saved it)."""
    import torch

    from distill.training import TrainOutcome

    n, cuda = config.num_gpus, torch.cuda.is_available()
    _check_devices(n, cuda)
    files = _write_job(config, model_path, train_rows, val_rows, out_dir)
    cmd = launch_command(n, files.job)
    log.info("Training in %d processes (%s): %s", n, "CUDA, nccl" if cuda else "CPU, gloo", " ".join(cmd))
    t0 = time.perf_counter()
    output = _RankOutput()
    metrics = _MetricsTail(RunDir(out_dir).metrics, on_metrics)
    # Own session: a terminal's Ctrl-C or a signal to the caller's group reaches this process only,
    # which then stops the ranks (below) instead of torchrun tearing them down under it.
    proc = subprocess.Popen(cmd, env=_launch_env(n, cuda), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", start_new_session=True,
                            preexec_fn=_die_with_parent)  # noqa: PLW1509
    reader = threading.Thread(target=output.forward, args=(proc.stdout,), name="ddp-output", daemon=True)
    reader.start()
    try:
        _supervise(proc, n, files, metrics, should_cancel)
    finally:
        reader.join(timeout=10)
        metrics.poll()
        files.rows.unlink(missing_ok=True)  # a copy of the data; job.json stays as the record
    if proc.returncode != 0 or not files.outcome.is_file():
        raise DistributedTrainingError(
            f"training in {n} processes (accelerate launch) failed with exit code {proc.returncode}: "
            f"{_last_error(output.tail) or 'no output'}")
    done = json.loads(files.outcome.read_text())
    log.info("Trained in %d processes: %d optimizer steps, %.1f s", done["world_size"], done["global_step"],
             done["train_seconds"])
    return TrainOutcome(model=None, cancelled=done["cancelled"], global_step=done["global_step"],
                        best_checkpoint=done["best_checkpoint"], train_seconds=time.perf_counter() - t0)


def _check_devices(n: int, cuda: bool) -> None:
    import torch

    if cuda and torch.cuda.device_count() < n:
        raise DistributedTrainingError(
            f"--num_gpus {n}: only {torch.cuda.device_count()} CUDA device(s) visible here "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")


def _write_job(config: RunConfig, model_path: str, train_rows: list[dict], val_rows: list[dict],
               out_dir: Path) -> DDPFiles:
    """``job.json`` and ``rows.json`` for the ranks; a previous attempt's cancel flag and outcome removed."""
    files = RunDir(out_dir).ddp_files
    files.root.mkdir(parents=True, exist_ok=True)
    for stale in (files.cancel, files.outcome):
        stale.unlink(missing_ok=True)
    files.job.write_text(json.dumps({"config": config.to_json(), "model_path": model_path, "out_dir": str(out_dir)},
                                    indent=2))
    files.rows.write_text(json.dumps({"train": train_rows, "val": val_rows}))
    return files


def _launch_env(n: int, cuda: bool) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TQDM_DISABLE="1", HF_DATASETS_DISABLE_PROGRESS_BARS="1")
    if not cuda:  # N ranks share the cores; more threads than cores makes every rank wait on the others
        env["OMP_NUM_THREADS"] = str(max(1, _cores() // n))
    return env


class _RankOutput:
    """The ranks' output lines, forwarded to the ``distill`` logger at their own level; the last 200 kept for
    the error message."""

    def __init__(self) -> None:
        self.tail: collections.deque[str] = collections.deque(maxlen=200)

    def forward(self, stream: Any) -> None:
        for raw in stream:
            line = raw.rstrip()
            if not line:
                continue
            self.tail.append(line)
            m = _LINE.match(line)
            log.log(getattr(logging, m.group(1)) if m else logging.INFO, "%s", m.group(2) if m else line)


def _supervise(proc: subprocess.Popen, n: int, files: DDPFiles, metrics: _MetricsTail,
               should_cancel: Callable[[], bool] | None) -> None:
    """Until the launcher exits: metrics forwarded, a cancel passed on (``ddp/cancel``), and the ranks terminated
    when they do not stop within ``CANCEL_GRACE_S`` or when this raises (Ctrl-C)."""
    import psutil

    cancel_at: float | None = None
    ranks: list[Any] = []
    try:
        while proc.poll() is None:
            time.sleep(POLL_S)
            metrics.poll()
            try:  # remembered for the cancel: once the launcher is gone, they are nobody's children
                ranks = psutil.Process(proc.pid).children(recursive=True) or ranks
            except psutil.NoSuchProcess:
                pass
            if cancel_at is None and should_cancel and should_cancel():
                log.info("Cancel: asking the %d training processes to stop at their next step", n)
                files.cancel.touch()
                cancel_at = time.monotonic()
            elif cancel_at is not None and time.monotonic() - cancel_at > CANCEL_GRACE_S:
                log.warning("Cancel: the training processes did not stop within %.0f s; terminating them",
                            CANCEL_GRACE_S)
                _terminate(proc, ranks)
                raise RunCancelled("cancelled; the training processes were terminated (the last epoch's "
                                   "checkpoint, if any, is kept)")
    finally:
        if proc.poll() is None:  # an exception here (Ctrl-C, the cancel above): leave no rank behind
            _terminate(proc, ranks)


# --- each rank ---------------------------------------------------------------------------------

def _agreed_cancel(flag: Path) -> Callable[[], bool]:
    """should_cancel for a rank: true on every rank at the same step, or none (a rank that stopped
    alone would leave the others waiting in the next gradient all-reduce)."""
    import torch
    import torch.distributed as dist

    def should_cancel() -> bool:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if torch.cuda.is_available() else "cpu"
        vote = torch.tensor([1.0 if flag.exists() else 0.0], device=device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(vote, op=dist.ReduceOp.MAX)
        return bool(vote.item() > 0)

    return should_cancel


def main(argv: list[str] | None = None) -> int:
    import torch.distributed as dist

    from distill.data.prepare import ensure_chat_template
    from distill.models import load_model, load_tokenizer, save_model
    from distill.training import train

    job = Path((sys.argv[1:] if argv is None else argv)[0])
    spec = json.loads(job.read_text())
    config, out_dir, model_path = RunConfig(**spec["config"]), Path(spec["out_dir"]), spec["model_path"]
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, stream=sys.stdout, force=True,
                        format=f"%(levelname)s [rank {rank}] %(message)s")
    if rank != 0:  # the same warnings as rank 0's, N times over in the run's log
        warnings.simplefilter("ignore")
    files = DDPFiles(job.parent)
    rows = json.loads(files.rows.read_text())
    tokenizer = load_tokenizer(model_path, config.trust_remote_code)
    ensure_chat_template(tokenizer)
    model = load_model(model_path, trust_remote_code=config.trust_remote_code)
    per_step = config.batch_size * config.gradient_accumulation * world
    log.info("DDP: %d processes; each trains on 1/%d of the %d rows per epoch; effective batch %d x %d x %d = %d rows "
             "per optimizer step", world, world, len(rows["train"]), config.batch_size, config.gradient_accumulation,
             world, per_step)
    outcome = train(config, model, tokenizer, rows["train"], rows["val"], out_dir,
                    should_cancel=_agreed_cancel(files.cancel))
    joined = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    if rank == 0:
        if not outcome.cancelled:
            save_model(outcome.model, tokenizer, RunDir(out_dir).final_model)
        files.outcome.write_text(json.dumps({
            "world_size": joined, "cancelled": outcome.cancelled, "global_step": outcome.global_step,
            "best_checkpoint": outcome.best_checkpoint, "train_seconds": outcome.train_seconds}, indent=2))
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
