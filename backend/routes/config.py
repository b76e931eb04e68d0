"""The run configuration's reference: /config/schema, /config/resolve, /models (embedded default, model cache,
presets) and /metric-definitions (how each metric is labelled and shown)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body

from backend.errors import FieldError
from backend.schemas import ModelsOut
from distill.config import EMBEDDED_MODEL, ConfigError, RunConfig, build_config
from distill.evaluation.summary import metric_catalog
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


@router.post("/config/resolve", summary="The final RunConfig for a partial one: defaults < preset < fields; 422 "
             "names every bad field")
def resolve_config(body: dict[str, Any] = Body(default_factory=dict)) -> dict[str, Any]:
    try:
        return build_config(body).to_json()
    except ConfigError as e:
        raise FieldError.of(e.issues) from None


@router.get("/metric-definitions", summary="How each metric is labelled and shown: key, label, unit, scale, decimals, "
            "delta_unit (pp for percentages), better (+1 higher is better, -1 lower, 0 neither), shown (compared in "
            "the base-vs-SFT table)")
def metric_definitions() -> list[dict[str, Any]]:
    return metric_catalog()


@router.get("/config/schema", summary="RunConfig's JSON schema; each property has group, description, default")
def config_schema() -> dict[str, Any]:
    schema = RunConfig.model_json_schema()
    for name, prop in schema.get("properties", {}).items():
        info = RunConfig.model_fields[name]
        prop.setdefault("default", info.default)
        prop.setdefault("description", info.description)
        prop.setdefault("group", (info.json_schema_extra or {}).get("group", "other"))  # type: ignore[union-attr]
    return schema
