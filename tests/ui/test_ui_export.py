"""The Run page's Export panel in a real browser: a finished run exported to Ollama (a real GGUF and Modelfile),
then listed on the page with download links that the browser's own request fetches."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from ui_support import Studio, open_ui, wait_text

from distill.export.gguf import converter_dir
from distill.export.run import ExportRequest, export_run

pytestmark = [pytest.mark.browser, pytest.mark.skipif(
    not (converter_dir() / "convert_hf_to_gguf.py").is_file(),
    reason="llama.cpp's converter is not installed: make setup installs it")]


def test_export_panel_lists_exports_with_download_links(page: Any, studio: Studio) -> None:
    rid = studio.finished_run()
    out = Path(studio.api.get(f"/runs/{rid}").json()["output_dir"])
    open_ui(page, f"{studio.url}/ui/?run={rid}")
    wait_text(page, "#exports", "No exports yet", timeout=60_000)
    done = export_run(out, ExportRequest(to="ollama", quants=["q8_0"]))
    page.reload()
    open_ui(page, f"{studio.url}/ui/?run={rid}")
    wait_text(page, "#exports .ds-exports", "MOSTLY_Q8_0", timeout=60_000)
    links = page.locator("#exports .ds-exports a[download]")
    names = [a.split(" (")[0] for a in links.all_inner_texts()]
    assert sorted(names) == sorted(done["files"]), names
    href = links.filter(has_text="Modelfile").get_attribute("href")
    modelfile = httpx.get(urljoin(page.url, href), timeout=30)  # as the browser resolves it
    assert modelfile.status_code == 200 and modelfile.text.startswith("FROM ./")
    assert not page.js_errors, page.js_errors
