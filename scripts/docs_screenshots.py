"""Retake the README's dashboard screenshots (docs/img/run_page.png, docs/img/playground.png).

    .venv/bin/python scripts/docs_screenshots.py              # a demo-preset run on the embedded model (~15 min on 2 cores)
    .venv/bin/python scripts/docs_screenshots.py --home DIR   # reuse DIR's finished runs: only the screenshots

Starts the server as ``make run`` does (``distill serve --with-worker``) with DIR as DISTILL_HOME, launches a
``demo`` run through the REST API unless DIR already holds a succeeded one, then opens its Run page and the
Playground in headless Chromium. The tests' screenshots use the tiny random model, whose answers are gibberish;
these use the real embedded model so that the pictures show what a user sees.
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


def demo_run(studio: Studio, timeout_s: float) -> int:
    done = studio.api.get("/runs", params={"status": "succeeded"}).json()["items"]
    if done:
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


def screenshots(url: str, run_id: int, out: Path) -> None:
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_context(viewport=VIEWPORT).new_page()
        pg.set_default_timeout(60_000)
        pg.goto(f"{url}/ui/?run={run_id}")
        pg.wait_for_selector("#eval-table table.ds-metrics")
        pg.wait_for_selector("#plot-loss .mark-line path")
        time.sleep(1.0)  # let the plots finish drawing
        # The page lists every evaluation prompt; the top (log, curves, tables, the first answers) is the picture.
        pg.screenshot(path=str(out / "run_page.png"), full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": 2300})

        pg.goto(f"{url}/ui/?tab=playground")
        pg.get_by_role("tab", name="Playground", exact=True).click()
        pg.wait_for_function("() => (document.querySelector('#pg-run input')?.value || '').startsWith('#')")
        pg.locator("#pg-prompt textarea").fill(PROMPT)
        pg.click("#pg-send")
        pg.wait_for_function("() => ['#pg-base-timing', '#pg-sft-timing'].every("
                             "s => document.querySelector(s).innerText.includes('tokens in'))", timeout=600_000)
        pg.screenshot(path=str(out / "playground.png"), full_page=True)
        browser.close()
    print(f"wrote {out / 'run_page.png'} and {out / 'playground.png'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, help="DISTILL_HOME to use (default: a new temp folder)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the demo run")
    a = ap.parse_args()
    home = a.home or Path(tempfile.mkdtemp(prefix="distill_docs_"))
    studio = Studio(home, free_port(), log_name="docs_screenshots_server.log")
    studio.start()
    try:
        run_id = demo_run(studio, a.timeout)
        save_run_record(studio, run_id, home)
        a.out.mkdir(parents=True, exist_ok=True)
        screenshots(studio.url, run_id, a.out)
    finally:
        studio.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
