"""Torch's intra-op thread count for CPU work on a machine that may be shared (training and generation).

On a machine shared with other busy processes, an OpenMP team of all cores waits at every barrier
for a member the scheduler has preempted, and one thread was measured several times faster than
two on a 2-core machine under load (docs/benchmarks.md); on an idle machine all cores win.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

TUNING_ENV = "DISTILL_THREAD_TUNING"  # "0" turns the thread tuner off


class ThreadTuner:
    """Picks torch's intra-op thread count for CPU work on a machine that may be shared.

    Before the first unit of work, and then every ``reprobe_s`` seconds, a short probe runs with
    each candidate count (all threads, half, one): a dozen 512x576x576 matmuls with elementwise ops
    between them, i.e. as many OpenMP parallel regions as a transformer layer has. The fastest count
    is used until the next probe. Call ``begin()`` before and ``end(units)`` after each unit of work
    (a training micro-batch, a decoding step); the units are timed for ``summary()`` only.
    Nothing changes where only one thread is allowed (``OMP_NUM_THREADS=1``) or with
    DISTILL_THREAD_TUNING=0.
    """

    def __init__(self, max_threads: int | None = None, reprobe_s: float = 20.0):
        self.original = torch.get_num_threads()
        n = max_threads or self.original
        self.candidates = sorted({n, max(1, n // 2), 1}, reverse=True)
        self.reprobe_s = reprobe_s
        self.choice = self.original
        self.current = self.original
        self.probes: dict[int, float] = {}
        self.n_probes = 0
        self.probe_s = 0.0
        self.cost: dict[int, float] = {}
        self.uses: dict[int, int] = {}
        self._next_probe = 0.0
        self._t0: float | None = None
        self._data: tuple[torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def for_device(cls, device: torch.device | str, **kw: Any) -> ThreadTuner | None:
        """A tuner for CPU work with more than one thread allowed, else None."""
        if torch.device(device).type != "cpu" or os.environ.get(TUNING_ENV, "1") == "0" or torch.get_num_threads() < 2:
            return None
        return cls(**kw)

    def _probe_cost(self, threads: int) -> float:
        if self._data is None:
            g = torch.Generator().manual_seed(0)
            self._data = torch.randn(512, 576, generator=g), torch.randn(576, 576, generator=g) / 24
        x, w = self._data
        torch.set_num_threads(threads)
        best = float("inf")
        with torch.no_grad():
            for _ in range(2):
                t = time.perf_counter()
                y = x
                for _ in range(12):
                    y = torch.relu(y @ w) * 0.5 + x
                best = min(best, time.perf_counter() - t)
        return best

    def probe(self) -> None:
        t = time.perf_counter()
        self.probes = {c: self._probe_cost(c) for c in self.candidates}
        self.choice = min(self.probes, key=self.probes.__getitem__)
        torch.set_num_threads(self.choice)
        self.n_probes += 1
        self.probe_s += time.perf_counter() - t
        self._next_probe = time.monotonic() + self.reprobe_s

    def begin(self) -> None:
        if time.monotonic() >= self._next_probe:
            self.probe()
        if self.choice != torch.get_num_threads():
            torch.set_num_threads(self.choice)
        self.current = self.choice
        self._t0 = time.perf_counter()

    def end(self, units: float = 1.0) -> None:
        if self._t0 is None:
            return
        sample = (time.perf_counter() - self._t0) / max(units, 1e-9)
        self._t0 = None
        self.uses[self.current] = self.uses.get(self.current, 0) + 1
        old = self.cost.get(self.current)
        self.cost[self.current] = sample if old is None else 0.8 * old + 0.2 * sample

    def discard(self) -> None:
        """Forget the unit begun last (it did not run as one)."""
        self._t0 = None

    def restore(self) -> None:
        if torch.get_num_threads() != self.original:
            torch.set_num_threads(self.original)

    def summary(self) -> dict[str, Any]:
        return {"threads_used": {str(k): v for k, v in sorted(self.uses.items())},
                "s_per_unit": {str(k): round(v, 6) for k, v in sorted(self.cost.items())},
                "last_probe_s": {str(k): round(v, 4) for k, v in sorted(self.probes.items())},
                "probes": self.n_probes, "probe_total_s": round(self.probe_s, 2)}
