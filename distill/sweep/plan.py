"""A sweep's points: the axes expanded (grid, paired axes, a random subset, seeds), every point validated as a
``RunConfig`` before anything runs, and points that would be the same run merged."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from distill.config import ConfigError, RunConfig
from distill.errors import UserError
from distill.resolve import resolve_config

# Fields that name or place a run but do not change what it computes.
_NOT_COMPUTED = ("name", "preset", "output_dir", "resume", "base_answers_dir")


class SweepError(UserError, ValueError):
    """A bad sweep: one line per problem (an axis, or a point naming its field)."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


class SweepSpec(BaseModel):
    """What the user asks for. ``grid``: every combination of its values; ``paired``: groups of fields whose
    values move together (equal lengths); ``random``: that many points drawn from the full grid."""

    model_config = ConfigDict(extra="forbid")

    base: dict[str, Any] = Field(default_factory=dict, description="RunConfig fields shared by every point")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="field: values, crossed with the others")
    paired: list[dict[str, list[Any]]] = Field(default_factory=list,
                                               description="groups of fields whose i-th values go together")
    random: int | None = Field(None, ge=1, description="Run this many points drawn from the grid instead of all")
    random_seed: int = Field(0, description="Seed of the random draw")
    seeds: list[int] = Field(default_factory=list, description="Repeat every point with each of these seeds")
    objective: str | None = Field(None, description="SUITE or SUITE:METRIC the verdict ranks by; default the "
                                                    "first suite's pass@1")
    max_points: int = Field(64, ge=1, le=10_000, description="Refuse sweeps with more runs than this")
    max_parallel: int = Field(1, ge=1, le=64, description="Runs at once")


@dataclass
class Point:
    name: str
    overrides: dict[str, Any]
    config: RunConfig
    merged: list[str] = field(default_factory=list)  # names of points that were the same run


def _axes(spec: SweepSpec) -> list[list[dict[str, Any]]]:
    """Each axis as its list of settings; a setting sets one field (grid) or several (a paired group)."""
    problems: list[str] = []
    axes: list[tuple[str, list[dict[str, Any]]]] = [(name, [{name: v} for v in values])
                                                     for name, values in spec.grid.items()]
    for group in spec.paired:
        lengths = {len(v) for v in group.values()}
        if len(lengths) > 1:
            problems.append(f"paired axis {', '.join(group)}: the value lists differ in length ({sorted(lengths)})")
            continue
        n = lengths.pop() if lengths else 0
        axes.append((", ".join(group), [{f: vals[i] for f, vals in group.items()} for i in range(n)]))
    for name in [*spec.grid, *(f for g in spec.paired for f in g)]:
        if name not in RunConfig.model_fields:
            problems.append(f"axis {name!r}: not a run configuration field")
        elif name in _NOT_COMPUTED or name == "seed" and spec.seeds:
            problems.append(f"axis {name!r}: cannot be swept" + (" (use seeds)" if name == "seed" else ""))
    problems += [f"axis {label}: no values" for label, settings in axes if not settings]
    if not spec.grid and not spec.paired and not spec.seeds:
        problems.append("the sweep has no axis: give at least one field with values (or seeds)")
    if problems:
        raise SweepError(problems)
    return [settings for _, settings in axes]


def point_name(overrides: dict[str, Any]) -> str:
    return ",".join(f"{k}={_short(v)}" for k, v in overrides.items()) or "base"


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def combinations(spec: SweepSpec) -> list[dict[str, Any]]:
    """The overrides of every point, in grid order (a random draw keeps that order)."""
    combos = [{k: v for setting in combo for k, v in setting.items()} for combo in itertools.product(*_axes(spec))]
    if spec.random is not None and spec.random < len(combos):
        keep = sorted(random.Random(spec.random_seed).sample(range(len(combos)), spec.random))
        combos = [combos[i] for i in keep]
    if spec.seeds:
        combos = [{**c, "seed": s} for c in combos for s in spec.seeds]
    return combos


def effective(config: RunConfig) -> dict[str, Any]:
    """What the run computes: fields that an off switch makes irrelevant are dropped."""
    values = {k: v for k, v in config.model_dump().items() if k not in _NOT_COMPUTED}
    off = []
    if not config.use_kl_regularization:
        off.append("kl_coef")
    if not config.use_lora:
        off += [k for k in values if k.startswith("lora_")]
    if not config.generates_traces:
        off += [k for k in values if k.startswith("teacher_") or k in ("num_generations", "keep", "dedup_jaccard",
                                                                          "max_teacher_tokens", "decontaminate")]
    if config.engine != "openai":
        off += [k for k in values if k.startswith("engine_") and k != "engine"]
    return {k: v for k, v in values.items() if k not in off}


Resolve = Callable[[dict[str, Any]], RunConfig]


def _check_base(spec: SweepSpec, resolve: Resolve) -> None:
    """Problems of the shared base configuration are said once, not once per point."""
    if spec.base.get("output_dir"):
        raise SweepError(["base configuration: --output_dir: every point gets a folder of its own; leave it out"])
    swept = {k for c in combinations(spec) for k in c}
    try:
        resolve(dict(spec.base))
    except ConfigError as e:
        problems = [f"base configuration: --{f}: {m}" for f, m in e.issues if f not in swept]
        if problems:
            raise SweepError(problems) from None


def plan(spec: SweepSpec, *, home: Path | None = None, resolve: Resolve | None = None) -> list[Point]:
    """Every point, validated (by ``resolve``, default the core's rules under ``home``) and merged where two
    would be the same run; a ``SweepError`` names every bad one."""
    resolve = resolve or (lambda values: resolve_config(values, home=home))
    combos = combinations(spec)
    _check_base(spec, resolve)
    if len(combos) > spec.max_points:
        raise SweepError([f"the sweep has {len(combos)} points, more than max_points={spec.max_points}"])
    points: list[Point] = []
    problems: list[str] = []
    seen: dict[str, Point] = {}
    for overrides in combos:
        name = point_name(overrides)
        try:
            config = resolve({**spec.base, **overrides})
        except ConfigError as e:
            problems += [f"point {name}: --{f}: {m}" if f else f"point {name}: {m}" for f, m in e.issues]
            continue
        key = repr(sorted(effective(config).items()))
        if key in seen:
            seen[key].merged.append(name)
            continue
        seen[key] = Point(name, overrides, config)
        points.append(seen[key])
    if problems:
        raise SweepError(problems)
    return points
