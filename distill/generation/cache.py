"""The base model's answers, kept and reused across runs: the points of a sweep ask the same base model the same
problems with the same settings, so only the first asks; the others read its answers.

A prompt is reused only when everything that decides its answer is the same: the base model and the engine (the
file's key) and the prompt itself (messages, or text, and every sampling setting, seed included). Fine-tuned models'
answers are never cached. Several runs may share a folder at once: lines are appended under a file lock.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from distill.generation.engine import BASE, Engine, Generation, OnDelta, OnResult, Prompt


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def prompt_key(prompt: Prompt) -> str:
    return _digest({"messages": list(prompt.messages), "text": prompt.text, "continue": prompt.continue_final,
                    "sampling": dataclasses.asdict(prompt.sampling)})


class BaseAnswerCache:
    """``FOLDER/<key of model and engine>.jsonl``: one line per answer, ``{"key", "generation"}``."""

    def __init__(self, folder: Path, identity: dict[str, Any]):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{_digest(identity)[:20]}.jsonl"
        self.identity = identity
        self.answers: dict[str, Generation] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                row = json.loads(line) if line.strip() else {}
                if "key" in row:
                    self.answers[row["key"]] = Generation(**row["generation"])
        self.hits = 0

    def get(self, prompt: Prompt) -> Generation | None:
        gen = self.answers.get(prompt_key(prompt))
        self.hits += gen is not None
        return gen

    def put(self, prompt: Prompt, gen: Generation) -> None:
        key = prompt_key(prompt)
        if gen.error or key in self.answers:
            return
        self.answers[key] = gen
        line = json.dumps({"key": key, "identity": self.identity, "generation": dataclasses.asdict(gen)})
        with self.path.open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.write(line + "\n")


class CachingEngine:
    """An engine whose base-model prompts are answered from the cache when they can be, and kept there when not."""

    def __init__(self, engine: Engine, cache: BaseAnswerCache):
        self.engine, self.cache, self.name = engine, cache, engine.name

    def generate(self, prompts: Sequence[Prompt], *, on_delta: OnDelta | None = None,
                 should_cancel: Callable[[], bool] | None = None, desc: str = "generate",
                 on_result: OnResult | None = None) -> list[Generation]:
        out: list[Generation | None] = [self.cache.get(p) if p.model == BASE else None for p in prompts]
        for i, gen in enumerate(out):
            if gen is not None and on_result is not None:
                on_result(i, gen)
        ask = [i for i, gen in enumerate(out) if gen is None]

        def kept(n: int, gen: Generation) -> None:
            i = ask[n]
            if prompts[i].model == BASE:
                self.cache.put(prompts[i], gen)
            if on_result is not None:
                on_result(i, gen)

        delta = (lambda n, text: on_delta(ask[n], text)) if on_delta is not None else None
        gens = self.engine.generate([prompts[i] for i in ask], on_delta=delta, should_cancel=should_cancel,
                                    desc=desc, on_result=kept) if ask else []
        for i, gen in zip(ask, gens, strict=True):
            if on_result is None and prompts[i].model == BASE:
                self.cache.put(prompts[i], gen)
            out[i] = gen
        return [g for g in out if g is not None]

    def models(self) -> list[str]:
        return self.engine.models()

    def close(self) -> None:
        self.engine.close()
