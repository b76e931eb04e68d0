"""A GPU worker's vLLM server: ``distill worker --engine vllm --engine-base MODEL``.

The worker starts ``vllm serve`` on its GPUs (the ``vllm`` extra: ``pip install .[vllm]``), serving the
base model under its own id and every finished LoRA run on that base as ``run-N`` (multi-LoRA, loaded at
run time through vLLM's ``/v1/load_lora_adapter``), and advertises the URL; the API then routes the
Playground and new benchmark jobs there. A run deleted is unloaded.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from backend.store import Store

log = logging.getLogger("distill.worker")
SYNC_S = 10.0


class VLLMServer:
    def __init__(self, store: Store, base: str, port: int, max_loras: int = 8, max_lora_rank: int = 64):
        self.store, self.base, self.port = store, base, port
        self.max_loras, self.max_lora_rank = max_loras, max_lora_rank
        self.url = f"http://127.0.0.1:{port}/v1"
        self.proc: subprocess.Popen | None = None
        self.loaded: dict[str, str] = {}  # run-N -> adapter path
        self.stop = threading.Event()

    def command(self, model_path: str) -> list[str]:
        exe = shutil.which("vllm")
        head = [exe, "serve"] if exe else [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model"]
        return [*head, model_path, "--served-model-name", self.base, "--port", str(self.port), "--host", "127.0.0.1",
                "--enable-lora", "--max-loras", str(self.max_loras), "--max-lora-rank", str(self.max_lora_rank)]

    def start(self, timeout_s: float = 900.0) -> None:
        from distill.models import ensure_local_model

        try:
            import vllm  # noqa: F401
        except ImportError:
            raise SystemExit("distill worker --engine vllm needs vLLM: pip install '.[vllm]' (on a GPU machine)") from None
        env = dict(os.environ, VLLM_ALLOW_RUNTIME_LORA_UPDATING="True")
        self.proc = subprocess.Popen(self.command(ensure_local_model(self.base)), env=env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"vLLM exited with {self.proc.returncode} before serving")
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
        else:
            raise SystemExit(f"vLLM did not answer at {self.url} within {timeout_s:.0f} s")
        threading.Thread(target=self._sync_loop, name="vllm-sync", daemon=True).start()

    def _wanted(self) -> dict[str, str]:
        from sqlalchemy import select

        from backend.tables import Run
        from distill.rundir import RunDir

        out = {}
        with self.store.sessions() as s:
            for run in s.scalars(select(Run).where(Run.parent_id.is_(None), Run.status == "succeeded")):
                cfg = run.config or {}
                adapter = RunDir(Path(run.output_dir)).final_model if run.output_dir else None
                if cfg.get("model") == self.base and cfg.get("use_lora", True) and adapter and adapter.is_dir():
                    out[f"run-{run.id}"] = str(adapter)
        return out

    def sync(self) -> None:
        wanted = self._wanted()
        for name, path in wanted.items():
            if self.loaded.get(name) != path:
                r = httpx.post(f"{self.url}/load_lora_adapter",
                               json={"lora_name": name, "lora_path": path}, timeout=120)
                if r.status_code < 400:
                    self.loaded[name] = path
                else:
                    log.warning("vLLM did not load %s (%s): %s", name, r.status_code, r.text[:200])
        for name in set(self.loaded) - set(wanted):
            httpx.post(f"{self.url}/unload_lora_adapter", json={"lora_name": name}, timeout=60)
            self.loaded.pop(name, None)

    def _sync_loop(self) -> None:
        while not self.stop.wait(SYNC_S):
            try:
                self.sync()
            except Exception as e:  # noqa: BLE001 - the next round tries again
                log.warning("vLLM adapter sync: %s", e)

    def close(self) -> None:
        self.stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

