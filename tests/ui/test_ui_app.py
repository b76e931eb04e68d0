"""The dashboard builds without a reachable API, mounts at /ui (its form schema asked of the API's own
routes in-process), imports nothing of the service, and turns the form into the right request."""

from __future__ import annotations

import functools
import subprocess
import sys

import gradio as gr
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from distill.config import build_config  # what POST /config/resolve serves
from ui.manager import Manager, merge
from ui.pages import launch
from ui.pages.common import Ctx, parse_schema
from ui_support import ROOT


@functools.cache
def config_schema() -> dict:
    """GET /config/schema, answered by the API's own route (not a copy of it)."""
    from backend.routes.config import router

    api = FastAPI()
    api.include_router(router)
    with TestClient(api) as http:
        response = http.get("/config/schema")
    assert response.status_code == 200, response.text
    return response.json()


PRESETS = {"seed": {"description": "seed", "config": {"model": "Qwen/Qwen2.5-0.5B", "learning_rate": 2e-5, "epochs": 3}}}


class FakeApi:
    """POST /config/resolve as the API does it, with this test's presets."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def resolve_config(self, body: dict) -> dict:
        self.calls.append(body)
        preset = (PRESETS.get(body.get("preset")) or {}).get("config", {})
        return build_config({**preset, **{k: v for k, v in body.items() if k != "preset"}}).to_json()


@pytest.fixture(scope="module")
def page() -> tuple[Ctx, Manager]:
    ctx = Ctx(api_url="http://127.0.0.1:9", token=None, link_base=None, public_api_url="http://localhost:8000",
              api=FakeApi(), aapi=None, schema=parse_schema(config_schema()))  # type: ignore[arg-type]
    m = Manager()
    with gr.Blocks():
        launch.build(ctx, m)
    return ctx, m


def _values(ctx: Ctx, **changes):  # noqa: ANN202
    """What the form's fields hold: the defaults as shown, with ``changes`` typed in."""
    return [changes.get(f.name, launch.shown_value(f, f.default)) for f in ctx.schema.fields]


def test_untouched_form_is_an_empty_body(page: tuple[Ctx, Manager]) -> None:
    ctx, _ = page
    assert launch.request_body(ctx, "", _values(ctx)) == {}
    assert launch.commands(ctx, "", _values(ctx))[0] == "distill"
    launch.request_body(ctx, "", _values(ctx))
    assert ctx.api.calls.count({}) == 1  # the baseline is resolved once per preset


def test_form_changes_and_preset(page: tuple[Ctx, Manager]) -> None:
    ctx, _ = page
    vals = _values(ctx, model="tiny-random", max_samples="8", epochs=1, general_prompts=False, name="tiny")
    assert launch.request_body(ctx, "", vals) == {
        "model": "tiny-random", "max_samples": 8, "epochs": 1, "general_prompts": False, "name": "tiny"}
    # With a preset the body names it and sends what differs from the preset, including a field set
    # back to the plain default (learning_rate 1e-3 where the preset says 2e-5).
    vals = _values(ctx, model="Qwen/Qwen2.5-0.5B", learning_rate=1e-3, epochs=3)
    assert launch.request_body(ctx, "seed", vals) == {"preset": "seed", "learning_rate": 1e-3}


def test_benchmark_fields_round_trip(page: tuple[Ctx, Manager]) -> None:
    ctx, m = page
    kinds = {f.name: (f.kind, f.nullable) for f in ctx.schema.fields}
    assert kinds["benchmarks"] == ("list", False) and kinds["temperature"] == ("float", True)
    assert kinds["top_p"] == ("float", True) and kinds["benchmark_limit"] == ("int", True)
    assert kinds["num_samples"] == ("int", False) and kinds["max_thinking_tokens"] == ("int", True)
    body = launch.request_body(ctx, "", _values(ctx, benchmarks=" heldout , mine=mine.jsonl?problem=q&answer=a&grader=math ",
                                                benchmark_limit="5", num_samples=4, temperature="", top_p="0.9",
                                                max_thinking_tokens="64"))
    assert body == {"benchmarks": ["heldout", "mine=mine.jsonl?problem=q&answer=a&grader=math"], "benchmark_limit": 5,
                    "num_samples": 4, "top_p": 0.9, "max_thinking_tokens": 64}
    assert "--benchmarks 'heldout,mine=mine.jsonl?problem=q&answer=a&grader=math'" in launch.cli_command(body)
    # Clone into form: a run's resolved configuration fills the fields as they show it.
    cfg = build_config(body).to_json()
    fills = launch.fill_updates(ctx, m, cfg)
    shown = {name: fills[m[f"launch.field_{name}"]]["value"] for name in ctx.schema.names}
    assert shown["benchmarks"] == "heldout,mine=mine.jsonl?problem=q&answer=a&grader=math"
    assert shown["temperature"] == "" and shown["top_p"] == "0.9" and shown["benchmark_limit"] == "5"
    assert launch.request_body(ctx, "", [shown[n] for n in ctx.schema.names]) == body


def test_bad_numbers_go_to_the_api_as_typed(page: tuple[Ctx, Manager]) -> None:
    ctx, _ = page
    body = launch.request_body(ctx, "", _values(ctx, max_samples="lots", epochs=0))
    assert body["max_samples"] == "lots" and body["epochs"] == 0  # the API's 422 names the field


def test_field_errors_mark_every_named_field(page: tuple[Ctx, Manager]) -> None:
    ctx, m = page
    ups = launch.field_updates(ctx, m, {"epochs": "Input should be greater than 0", "benchmarks": "unknown suite"})
    by_name = {name: ups[m[f"launch.field_{name}"]] for name in ctx.schema.names}
    assert by_name["epochs"]["elem_classes"] == ["ds-field-error"] and "greater than 0" in by_name["epochs"]["info"]
    assert by_name["benchmarks"]["elem_classes"] == ["ds-field-error"]
    assert by_name["batch_size"]["elem_classes"] == []


def test_manager_names_components_and_merges_updates() -> None:
    m = Manager()
    with gr.Blocks():
        a, b = gr.Textbox(), gr.Dropdown()
    m.add("p", {"a": a, "b": b})
    assert m["p.a"] is a and m.page("p") == {"a": a, "b": b} and m.list("p.b", "p.a") == [b, a]
    with pytest.raises(KeyError):
        m.add("p", {"a": a})
    merged = merge({b: gr.update(choices=[1, 2])}, {b: gr.update(value=2), a: "x"})
    assert merged[b]["choices"] == [1, 2] and merged[b]["value"] == 2 and merged[a] == "x"


def test_the_dashboard_imports_nothing_of_the_service() -> None:
    code = ("import sys, ui.app, ui.mount, ui.__main__; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('distill', 'backend', 'worker')); "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mount_asks_the_apps_own_routes_for_the_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISTILL_API_URL", raising=False)
    monkeypatch.setenv("DISTILL_API_TOKEN", "t0ken")
    from ui.mount import mount_dashboard

    app = FastAPI()
    seen = []

    @app.get("/api/v1/config/schema")
    def schema(request: Request) -> dict:
        seen.append(request.headers.get("authorization"))
        return config_schema()

    mount_dashboard(app)
    ui_app = next(r.app for r in app.routes if getattr(r, "path", "") == "/ui")
    ctx = ui_app.blocks.ds_ctx
    assert seen == ["Bearer t0ken"] and ctx.schema.source == "api" and "benchmarks" in ctx.schema.names


def test_mount_serves_ui_and_redirects_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISTILL_API_URL", raising=False)
    monkeypatch.delenv("DISTILL_API_TOKEN", raising=False)
    from ui.mount import mount_dashboard

    app = FastAPI()  # no API routes at all: the form says why it is empty, the rest works
    mount_dashboard(app)
    with TestClient(app) as c:
        r = c.get("/", follow_redirects=False)
        assert r.status_code in (302, 307) and r.headers["location"] == "/ui/"
        r = c.get("/ui/")
        assert r.status_code == 200 and "<html" in r.text.lower()
        assert "could not be built" in c.get("/ui/config").text


def test_mount_with_token_asks_for_login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTILL_API_TOKEN", "t0ken")
    monkeypatch.setenv("DISTILL_API_URL", "http://127.0.0.1:9")
    from ui.mount import mount_dashboard, token_auth

    check = token_auth("t0ken")
    assert check("admin", "t0ken") and check("alice", "t0ken") and not check("admin", "nope")
    app = FastAPI()
    mount_dashboard(app)
    with TestClient(app) as c:
        assert c.get("/ui/config").status_code == 401
        r = c.post("/ui/login", data={"username": "admin", "password": "t0ken"})
        assert r.status_code == 200
        assert c.get("/ui/config").status_code == 200


def test_problem_view_pages_and_filters() -> None:
    from ui.pages import benchmarks

    m = Manager()
    with gr.Blocks():
        benchmarks.build(None, m)  # type: ignore[arg-type]
    right = {"correct": True, "text": "4"}
    wrong = {"correct": False, "text": "5"}
    records = [{"id": str(i), "index": i, "prompt": f"q{i}", "gold": "4", "base": [wrong], "sft": [right if i % 3 else wrong]}
               for i in range(45)]
    data = {"records": records}
    p = m.page("benchmarks")
    last = benchmarks.page_view(m, data, "all", 9)  # past the end: the last page
    assert last[p["page"]] == 3 and last[p["problems"]].count('class="ds-sample ds-problem"') == 5
    assert "Problems 41–45 of 45 · page 3 of 3" in last[p["count"]]
    differ = benchmarks.page_view(m, data, "differ", 1)
    assert "of 30 (base and sft differ; 45 in all)" in differ[p["count"]]
    none = benchmarks.page_view(m, {"records": records[:1]}, "differ", 1)
    assert "No problem of 1 matches" in none[p["count"]]
    assert benchmarks.page_view(m, {}, "all", 1)[p["problems"]] == benchmarks.PICK_HINT
