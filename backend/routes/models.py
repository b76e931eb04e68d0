"""/models (embedded default, model cache, presets) and /config/schema (the run configuration)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from backend.schemas import ModelsOut
from distill.config import EMBEDDED_MODEL, RunConfig
from distill.presets import PRESETS

router = APIRouter(tags=["models"])


def _cached_models() -> list[str]:
    from distill.models import model_cache_dir

    names: list[str] = []
    root = model_cache_dir()
    if root.is_dir():
        names += sorted(p.name for p in root.iterdir() if (p / "config.json").is_file())
    hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
    if hub.is_dir():
        names += sorted(p.name.removeprefix("models--").replace("--", "/", 1)
                        for p in hub.iterdir() if p.name.startswith("models--"))
    return names


@router.get("/models", response_model=ModelsOut)
def models() -> ModelsOut:
    return ModelsOut(
        embedded=EMBEDDED_MODEL,
        builtin=[EMBEDDED_MODEL, "tiny-random"],
        cached=_cached_models(),
        presets={name: {"description": p["description"], "config": p["config"]} for name, p in PRESETS.items()},
    )


@router.get("/config/schema", summary="RunConfig's JSON schema; each property has group, description, default")
def config_schema() -> dict[str, Any]:
    schema = RunConfig.model_json_schema()
    for name, prop in schema.get("properties", {}).items():
        info = RunConfig.model_fields[name]
        prop.setdefault("default", info.default)
        prop.setdefault("description", info.description)
        prop.setdefault("group", (info.json_schema_extra or {}).get("group", "other"))  # type: ignore[union-attr]
    return schema
