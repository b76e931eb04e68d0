"""``distill sweep``: the usual run flags (or ``--config``/``--preset``) give the base configuration; ``--grid``,
``--paired``, ``--seeds`` the axes."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from distill.config import ConfigError, build_config
from distill.errors import UserError
from distill.sweep.plan import SweepError, SweepSpec, plan


def _field_values(text: str, flag: str) -> tuple[str, list[str]]:
    name, sep, values = text.partition("=")
    if not sep or not name.strip():
        raise SweepError([f"{flag} {text!r}: expected FIELD=V1,V2,…"])
    return name.strip(), [v.strip() for v in values.split(",") if v.strip()]


def _parser() -> argparse.ArgumentParser:
    from distill.cli import build_parser

    parser = build_parser()
    parser.prog = "distill sweep"
    parser.description = ("A sweep: the base configuration (flags, --config, --preset) with axes; every point is an "
                          "ordinary run; the sweep ends with a table and a verdict in DISTILL_HOME/sweeps/.")
    g = parser.add_argument_group("sweep")
    g.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2",
                   help="An axis: every value of FIELD, crossed with the other axes (repeat for more axes)")
    g.add_argument("--paired", action="append", default=[], metavar="F1=A,B;F2=C,D",
                   help="Fields whose values move together: the i-th value of each goes into the same point")
    g.add_argument("--random", type=int, help="Run only this many points drawn at random from the grid")
    g.add_argument("--random_seed", type=int, help="Seed of that draw (default 0)")
    g.add_argument("--seeds", help="Repeat every point with each of these comma-separated seeds")
    g.add_argument("--objective", help="SUITE or SUITE:METRIC the verdict ranks by (default: the first suite's pass@1)")
    g.add_argument("--max_points", type=int, help="Refuse a sweep with more runs than this (default 64)")
    g.add_argument("--max_parallel", type=int, help="Runs at once (default 1)")
    g.add_argument("--dry_run", action="store_true", help="Print the points and stop")
    return parser


def spec_from_args(args: dict[str, Any]) -> tuple[SweepSpec, str | None, bool]:
    """(the sweep, its folder if given, dry run) from parsed flags; the base configuration is every run flag."""
    axes = {k: args.pop(k, None) for k in ("grid", "paired", "random", "random_seed", "seeds", "objective",
                                            "max_points", "max_parallel")}
    dry_run, output_dir = args.pop("dry_run", False), args.pop("output_dir", None)
    base = build_config(args, args.pop("config", None)).model_dump(exclude_defaults=True)
    grid = dict(_field_values(t, "--grid") for t in axes["grid"] or [])
    paired = [dict(_field_values(part, "--paired") for part in t.split(";")) for t in axes["paired"] or []]
    seeds = [s.strip() for s in (axes["seeds"] or "").split(",") if s.strip()]
    if not all(s.lstrip("-").isdigit() for s in seeds):
        raise SweepError([f"--seeds: expected comma-separated whole numbers, got {axes['seeds']!r}"])
    values = {"base": base, "grid": grid, "paired": paired, "seeds": [int(s) for s in seeds],
              **{k: axes[k] for k in ("random", "random_seed", "objective", "max_points", "max_parallel")
                 if axes[k] is not None}}
    try:
        return SweepSpec(**values), output_dir, dry_run
    except ValueError as e:
        raise SweepError([str(e).splitlines()[-1]]) from None


def main(argv: list[str]) -> int:
    args = vars(_parser().parse_args(argv))
    try:
        spec, output_dir, dry_run = spec_from_args(args)
        points = plan(spec)
    except (SweepError, ConfigError) as e:
        problems = e.problems if isinstance(e, SweepError) else [str(e)]
        print("\n".join(f"error: {p}" for p in problems), file=sys.stderr)
        return 2
    print(f"{len(points)} runs: " + "; ".join(p.name + (f" (also {', '.join(p.merged)})" if p.merged else "")
                                          for p in points))
    if dry_run:
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    from distill.pipeline import distill_home
    from distill.sweep.run import run_sweep, sweep_root

    root = sweep_root(distill_home(), output_dir)
    try:
        summary = run_sweep(spec, root)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(summary["verdict"]["text"])
    print(f"table: {Path(root) / 'sweep.md'}")
    return 0 if all(r["status"] == "done" for r in summary["points"]) else 1
