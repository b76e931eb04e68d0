"""Two evaluated runs' SFT models on the same problems: each one's pass@1 with its 95 % interval, and the exact
McNemar test of the difference, pair by pair over the problems both answered.

    python scripts/paired_runs.py RUN_A RUN_B [--suite heldout] [--side sft]

RUN_A, RUN_B: run folders (or their evaluation folders) holding ``benchmarks/SUITE.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill.evaluation.stats import mcnemar_exact, wilson_interval  # noqa: E402


def correct_by_problem(folder: Path, suite: str, side: str) -> dict[str, bool]:
    path = folder / "benchmarks" / f"{suite}.jsonl"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found (a run folder evaluated on {suite})")
    rows = [json.loads(line) for line in path.read_text().splitlines()[1:] if line.strip()]
    return {r["id"]: bool(r[side][0]["correct"]) for r in rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_a", type=Path)
    ap.add_argument("run_b", type=Path)
    ap.add_argument("--suite", default="heldout", help="the suite both were evaluated on")
    ap.add_argument("--side", default="sft", choices=("sft", "base"), help="which model of each run")
    args = ap.parse_args()
    a, b = (correct_by_problem(r, args.suite, args.side) for r in (args.run_a, args.run_b))
    common = sorted(set(a) & set(b))
    for name, got in ((args.run_a, a), (args.run_b, b)):
        n = sum(got[i] for i in common)
        lo, hi = wilson_interval(n, len(common))
        print(f"{name}: {n}/{len(common)} = {100 * n / len(common):.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]")
    test = mcnemar_exact([a[i] for i in common], [b[i] for i in common])
    print(f"B - A: {100 * test.delta:+.1f} pp [{100 * test.ci[0]:.1f}, {100 * test.ci[1]:.1f}], exact McNemar "
          f"p = {test.p_value:.3g} ({test.base_only} only A right, {test.sft_only} only B right): "
          f"{'significant' if test.significant else 'NOT significant (could be noise)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
