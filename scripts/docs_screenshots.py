"""Retake the dashboard screenshots of the docs (docs/img/run_page.png, playground.png, benchmarks.png).

    .venv/bin/python scripts/docs_screenshots.py              # a demo-preset run on the embedded model (~15 min on 2 cores)
    .venv/bin/python scripts/docs_screenshots.py --home DIR   # reuse DIR's finished runs: only the screenshots
    .venv/bin/python scripts/docs_screenshots.py --pages benchmarks   # only some of the pictures

Starts the server as ``make run`` does (``distill serve --with-worker``) with DIR as DISTILL_HOME, launches a
``demo`` run through the REST API unless DIR already holds a succeeded one, then opens its Run page and the
Playground in headless Chromium. For the Benchmarks page it also runs a benchmark job on a small arithmetic
suite written into DIR (unless one already ran) and opens its problems. The tests' screenshots use the tiny
random model, whose answers are gibberish; these use the real embedded model so that the pictures show what a
user sees.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "ui"))

from ui_support import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, Studio, free_port  # noqa: E402

PROMPT = "A shop sells pens at $3 each. Ana buys 4 pens and pays with a $20 bill. How much change does she get?"
PAGES = ("run", "playground", "benchmarks")
# A suite of one's own (benchmark files must be inside DISTILL_HOME): short word problems with a number answer.
ARITH = [("Tom has 3 apples and buys 5 more. How many apples does he have?", "8"),
         ("A box holds 6 eggs. How many eggs are in 4 boxes?", "24"),
         ("Sara had 20 stickers and gave away 7. How many are left?", "13"),
         ("What is 15 + 27?", "42"),
         ("A pen costs $2. How much do 6 pens cost, in dollars?", "12"),
         ("There are 30 students in 5 equal groups. How many students are in each group?", "6")]
SUITE = "arith=arith.jsonl?problem=question&answer=answer&grader=number"


def demo_run(studio: Studio, timeout_s: float) -> int:
    done = [r for r in studio.api.get("/runs", params={"status": "succeeded"}).json()["items"] if not r.get("parent_id")]
    if done:  # a training run, not a benchmark job of one
        return int(done[0]["id"])
    run = studio.create_run(preset="demo", name="demo: SmolLM2-135M, embedded data")
    print(f"run {run['id']} launched; waiting for it (the demo takes ~13 min on 2 cores)", flush=True)
    t0 = time.monotonic()
    studio.wait_status(run["id"], {"succeeded"}, timeout_s)
    print(f"run {run['id']} succeeded in {time.monotonic() - t0:.0f} s", flush=True)
    return int(run["id"])


def save_run_record(studio: Studio, run_id: int, home: Path) -> None:
    """The run, its evaluation and its log next to the server's files, for quoting the figures shown."""
    import json

    record = {k: studio.api.get(path).json() for k, path in
              (("run", f"/runs/{run_id}"), ("evaluation", f"/runs/{run_id}/evaluation"))}
    (home / f"run_{run_id}_record.json").write_text(json.dumps(record, indent=1))
    summary = record["evaluation"].get("summary") or {}
    print(json.dumps(summary, indent=1)[:3000])
    print(f"saved {home / f'run_{run_id}_record.json'}")


def benchmark_job(studio: Studio, run_id: int, home: Path, timeout_s: float) -> None:
    """A benchmark job of the run on the arithmetic suite, unless one already ran."""
    import json

    done = studio.api.get(f"/runs/{run_id}/benchmarks").json()
    if any(r["suite"] == "arith" for r in done["results"]):
        return
    (home / "arith.jsonl").write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in ARITH))
    r = studio.api.post(f"/runs/{run_id}/benchmarks", json={"benchmarks": SUITE, "num_samples": 2, "max_new_tokens": 256})
    assert r.status_code == 202, r.text
    print(f"benchmark job {r.json()['id']} launched", flush=True)
    studio.wait_status(r.json()["id"], {"succeeded"}, timeout_s)


def screenshots(url: str, run_id: int, out: Path, pages: set[str]) -> None:
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_context(viewport=VIEWPORT).new_page()
        pg.set_default_timeout(60_000)
        if "benchmarks" in pages:
            # The leaderboard, then the arithmetic suite opened problem by problem.
            pg.goto(f"{url}/ui/?tab=benchmarks&run={run_id}&suite=arith")
            pg.wait_for_selector("#bench-problems .ds-problem")
            time.sleep(1.0)
            pg.screenshot(path=str(out / "benchmarks.png"), full_page=True,
                          clip={"x": 0, "y": 0, "width": 1280, "height": 2200})
            print(f"wrote {out / 'benchmarks.png'}")
        if not pages & {"run", "playground"}:
            browser.close()
            return
        pg.goto(f"{url}/ui/?run={run_id}")
        pg.wait_for_selector("#eval-table table.ds-metrics")
        pg.wait_for_selector("#plot-loss .mark-line path")
        time.sleep(1.0)  # let the plots finish drawing
        # The page lists every evaluation prompt; the top (log, curves, tables, the first answers) is the picture.
        if "run" in pages:
            pg.screenshot(path=str(out / "run_page.png"), full_page=True,
                          clip={"x": 0, "y": 0, "width": 1280, "height": 2300})
            print(f"wrote {out / 'run_page.png'}")
        if "playground" not in pages:
            browser.close()
            return
        pg.goto(f"{url}/ui/?tab=playground")
        pg.get_by_role("tab", name="Playground", exact=True).click()
        pg.wait_for_function("() => (document.querySelector('#pg-run input')?.value || '').startsWith('#')")
        pg.locator("#pg-prompt textarea").fill(PROMPT)
        pg.click("#pg-send")
        pg.wait_for_function("() => ['#pg-base-timing', '#pg-sft-timing'].every("
                             "s => document.querySelector(s).innerText.includes('tokens in'))", timeout=600_000)
        pg.screenshot(path=str(out / "playground.png"), full_page=True)
        browser.close()
    print(f"wrote {out / 'playground.png'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, help="DISTILL_HOME to use (default: a new temp folder)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the demo run")
    ap.add_argument("--pages", default=",".join(PAGES), help=f"which pictures, comma-separated ({', '.join(PAGES)})")
    a = ap.parse_args()
    pages = {x.strip() for x in a.pages.split(",") if x.strip()}
    if pages - set(PAGES):
        ap.error(f"unknown page(s) {', '.join(sorted(pages - set(PAGES)))}; known: {', '.join(PAGES)}")
    home = a.home or Path(tempfile.mkdtemp(prefix="distill_docs_"))
    studio = Studio(home, free_port(), log_name="docs_screenshots_server.log")
    studio.start()
    try:
        run_id = demo_run(studio, a.timeout)
        save_run_record(studio, run_id, home)
        if "benchmarks" in pages:
            benchmark_job(studio, run_id, home, a.timeout)
        a.out.mkdir(parents=True, exist_ok=True)
        screenshots(studio.url, run_id, a.out, pages)
    finally:
        studio.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
