"""The newcomer's path, in headless Chromium against the real server: while a run evaluates, the Run page's bar
covers the whole run (it stands below 100 %, says it is evaluating) and gives the whole run's ETA."""

from __future__ import annotations

import re
from typing import Any

import pytest
from ui_support import TINY, Studio, open_ui

RUN_TIMEOUT_S = 240
# Evaluation long enough to be watched (about 10 s on 2 cores: 16 problems in chunks of 2), training as TINY's.
EVALUATING_RUN = dict(TINY, eval_samples=16, max_new_tokens=96, eval_batch_size=4)
# The bar's text and fill while the run evaluates (read in one go, from the same render).
WHILE_EVALUATING = """() => {
  const el = document.querySelector('#run-progress');
  const text = el?.innerText || '';
  if (!text.includes('evaluating base and SFT') || !text.includes('ETA')) return null;
  return {text, width: parseFloat(el.querySelector('.ds-bar-fill').style.width)};
}"""


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_bar_stays_below_full_with_an_eta_while_the_run_evaluates(page: Any, studio: Studio) -> None:
    run = studio.create_run(name="progress while evaluating", **EVALUATING_RUN)
    open_ui(page, f"{studio.url}/ui/?run={run['id']}")
    seen = page.wait_for_function(WHILE_EVALUATING, timeout=RUN_TIMEOUT_S * 1000).json_value()
    pct = re.search(r"evaluating base and SFT · (\d+)% · ETA (\S+)", seen["text"])
    assert pct, seen["text"]
    assert 0 < int(pct.group(1)) < 100 and 0 < seen["width"] < 100, seen  # training done is not the whole run
    assert re.fullmatch(r"\d+s|\d+m \d\ds", pct.group(2)), seen["text"]
    assert studio.api.get(f"/runs/{run['id']}").json()["stage"] in ("evaluate", "save")
    done = studio.wait_status(run["id"], {"succeeded", "failed", "cancelled"}, RUN_TIMEOUT_S)
    assert done["status"] == "succeeded" and done["progress"] == 1.0, done.get("error")
    # The log says what the evaluation is doing, problem counts included, without a line per chunk of 2.
    lines = [ln["message"] for ln in studio.api.get(f"/runs/{run['id']}/logs", params={"limit": 10000}).json()["lines"]]
    progress = [ln for ln in lines if ln.startswith("evaluating heldout: ")]
    assert progress and progress[-1].startswith("evaluating heldout: 16/16 problems (base and SFT"), lines
    assert len(progress) < 8
    assert any(ln.startswith("Expected share of the run's work") for ln in lines)
    assert not page.js_errors, page.js_errors
