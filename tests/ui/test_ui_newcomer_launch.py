"""The newcomer's first page, in headless Chromium against the real server (``distill serve --with-worker``).

The Launch page opens on the demo preset, labelled with what it does and how long it takes here, the
no-preset entry labelled with what the plain defaults do; edits survive opening and closing the preset
list, and choosing another preset over them says which ones it replaced; the "Same run from a terminal"
command names the preset and, after an upload, a file that exists, and it parses and resolves as printed.
Screenshots go to test-artifacts/ui/.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from ui_support import MISSING_MODEL, Studio, fill_number, open_ui, wait_text

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]
DEMO_LABEL = ("demo: 200 built-in problems, 1 epoch (the embedded SmolLM2-135M), base vs SFT on 100 held-out "
              "— about 6 min on 2 CPU cores")
ROUND_TRIP_MS = 2_000  # long enough for a dropdown event's round trip to the server to land


def field_value(pg: Any, name: str) -> str:
    return pg.locator(f"#field-{name} input, #field-{name} textarea").first.input_value()


def cli_text(pg: Any) -> str:
    return pg.inner_text("#cli-cmd .cm-content").strip()


def open_on_demo(pg: Any, studio: Studio) -> None:
    open_ui(pg, f"{studio.url}/ui/")
    wait_text(pg, "#cli-cmd", "--preset demo")


def preset_options(pg: Any) -> list[str]:
    """Open the preset list; the labels it offers."""
    pg.locator("#preset-pick input").first.click()
    pg.get_by_role("option").first.wait_for()
    return [t.removeprefix("✓").strip() for t in pg.get_by_role("option").all_inner_texts()]  # ✓: the chosen one


def test_launch_opens_on_the_demo_preset_with_true_labels(page: Any, studio: Studio) -> None:
    pg = page
    open_on_demo(pg, studio)
    assert pg.locator("#preset-pick input").first.input_value() == DEMO_LABEL
    assert (field_value(pg, "max_samples"), field_value(pg, "epochs"), field_value(pg, "eval_samples")) == \
        ("200", "1", "100")
    assert field_value(pg, "model") == "smollm2-135m"
    assert cli_text(pg) == "distill --preset demo"
    options = preset_options(pg)
    assert DEMO_LABEL in options
    plain = [o for o in options if o.startswith("No preset")]
    assert plain == ["No preset (the plain defaults): 1,000 built-in problems, 3 epochs, base vs SFT on 100 held-out "
                     "— about an hour on 2 CPU cores"]
    assert not any("embedded CPU demo" in o for o in options)
    assert not pg.js_errors, pg.js_errors


def test_edits_survive_the_preset_list_and_a_new_preset_names_what_it_replaced(page: Any, studio: Studio) -> None:
    pg = page
    open_ui(pg, f"{studio.url}/ui/")  # the form is filled by then: the same load fills the health badge
    fill_number(pg, "max_samples", 24)
    fill_number(pg, "epochs", 2)
    wait_text(pg, "#cli-cmd", "--epochs 2")
    edited = cli_text(pg)
    assert edited.endswith("--max_samples 24 --epochs 2")
    # Open the list, then click elsewhere without choosing: nothing changes.
    preset_options(pg)
    pg.click("#ds-title")
    pg.wait_for_timeout(ROUND_TRIP_MS)
    assert (field_value(pg, "max_samples"), field_value(pg, "epochs")) == ("24", "2")
    assert cli_text(pg) == edited == "distill --preset demo --max_samples 24 --epochs 2"
    assert pg.inner_text("#preset-info").strip() == DEMO_LABEL.removeprefix("demo: ")  # its description, no notice
    # Another preset over the edits: its values, and one line naming the edits it replaced.
    preset_options(pg)
    pg.get_by_role("option", name=re.compile(r"^gsm8k-135m:")).click()
    wait_text(pg, "#preset-info", "replaced")
    assert pg.inner_text("#preset-info").strip() == \
        "Preset gsm8k-135m applied; it replaced your changes to max_samples, epochs."
    assert (field_value(pg, "max_samples"), field_value(pg, "epochs")) == ("500", "1")
    wait_text(pg, "#cli-cmd", "gsm8k-135m")
    assert cli_text(pg) == "distill --preset gsm8k-135m"
    assert not pg.js_errors, pg.js_errors


def test_uploaded_dataset_command_runs_as_printed(page: Any, studio: Studio, tmp_path: Path) -> None:
    from distill.cli import build_parser
    from distill.resolve import resolve_config

    rows = [{"prompt": f"What is {i}+{i}?", "response": f"<think>{i}+{i}={2 * i}</think> The answer is {2 * i}."}
            for i in range(6)]
    upload = tmp_path / "sums.jsonl"
    upload.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pg = page
    open_on_demo(pg, studio)
    with pg.expect_file_chooser() as chooser:
        pg.click("#dataset-upload")
    chooser.value.set_files(str(upload))
    wait_text(pg, "#launch-banner", "Uploaded sums.jsonl: 6 rows")
    wait_text(pg, "#cli-cmd", "--dataset")
    argv = shlex.split(cli_text(pg))
    assert argv[:3] == ["distill", "--preset", "demo"]
    dataset = Path(argv[argv.index("--dataset") + 1])
    assert dataset.is_file() and dataset.resolve().is_relative_to(studio.home.resolve())
    assert dataset.read_text() == upload.read_text()
    # As the CLI takes it: its own parser, then the resolution that checks every path (no training started).
    config = resolve_config(vars(build_parser().parse_args(argv[1:])))
    assert (config.dataset, config.max_samples, config.epochs) == (str(dataset), 200, 1)
    assert not pg.js_errors, pg.js_errors


def test_a_cloned_form_survives_the_preset_list(page: Any, studio: Studio) -> None:
    # A run that fails at load (the model is not cached): cheap, and its configuration is what gets cloned.
    run = studio.create_run(model=MISSING_MODEL, name="to clone", max_samples=24, epochs=2)
    pg = page
    open_ui(pg, f"{studio.url}/ui/?run={run['id']}")
    pg.click("#run-clone")
    wait_text(pg, "#launch-banner", f"Form filled from run #{run['id']}")
    assert pg.locator("#preset-pick input").first.input_value().startswith("No preset (the plain defaults): 1,000")
    preset_options(pg)
    pg.click("#ds-title")
    pg.wait_for_timeout(ROUND_TRIP_MS)
    assert (field_value(pg, "model"), field_value(pg, "max_samples"), field_value(pg, "epochs")) == \
        (MISSING_MODEL, "24", "2")
    assert pg.inner_text("#preset-info").strip() == ""
    assert not pg.js_errors, pg.js_errors
