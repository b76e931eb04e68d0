"""A real engine with the prompts it was asked recorded (for tests that count what reached the engine)."""

from __future__ import annotations

from typing import Any


class RecordingEngine:
    def __init__(self, engine: Any):
        self.engine, self.name, self.prompts = engine, engine.name, []

    def generate(self, prompts, **kw):  # noqa: ANN001, ANN003, ANN201 - the Engine protocol's signature
        self.prompts += list(prompts)
        return self.engine.generate(prompts, **kw)

    def models(self) -> list[str]:
        return self.engine.models()

    def close(self) -> None:
        pass
