"""The dashboard builds without a reachable API, mounts at /ui, and turns the form into the right request."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ui.pages import launch
from ui.pages.common import Ctx, local_schema

PRESETS = {"seed": {"description": "seed", "config": {"model": "Qwen/Qwen2.5-0.5B", "learning_rate": 2e-5, "epochs": 3}}}


@pytest.fixture(scope="module")
def ctx() -> Ctx:
    schema = local_schema()
    assert schema is not None
    return Ctx(api_url="http://127.0.0.1:9", token=None, link_base=None, public_api_url="http://localhost:8000",
               api=None, aapi=None, schema=schema)  # type: ignore[arg-type]


def _values(ctx: Ctx, **changes):  # noqa: ANN202
    vals = []
    for f in ctx.schema.fields:
        v = changes.get(f.name, f.default)
        if v is None and (f.kind == "str" or f.nullable):
            v = ""  # what an empty text box sends
        vals.append(v)
    return vals


def test_untouched_form_is_an_empty_body(ctx: Ctx) -> None:
    assert launch.request_body(ctx, "", PRESETS, _values(ctx)) == {}
    assert launch.commands(ctx, "", PRESETS, _values(ctx))[0] == "distill"


def test_form_changes_and_preset(ctx: Ctx) -> None:
    vals = _values(ctx, model="tiny-random", max_samples="8", epochs=1, general_prompts=False, name="tiny")
    assert launch.request_body(ctx, "", PRESETS, vals) == {
        "model": "tiny-random", "max_samples": 8, "epochs": 1, "general_prompts": False, "name": "tiny"}
    # With a preset the body names it and sends what differs from the preset, including a field set
    # back to the plain default (learning_rate 1e-3 where the preset says 2e-5).
    vals = _values(ctx, model="Qwen/Qwen2.5-0.5B", learning_rate=1e-3, epochs=3)
    assert launch.request_body(ctx, "seed", PRESETS, vals) == {"preset": "seed", "learning_rate": 1e-3}


def test_bad_numbers_go_to_the_api_as_typed(ctx: Ctx) -> None:
    body = launch.request_body(ctx, "", PRESETS, _values(ctx, max_samples="lots", epochs=0))
    assert body["max_samples"] == "lots" and body["epochs"] == 0  # the API's 422 names the field


def test_field_errors_mark_only_the_named_fields(ctx: Ctx) -> None:
    ups = launch.field_updates(ctx, {"epochs": "Input should be greater than 0"})
    by_name = dict(zip(ctx.schema.names, ups, strict=True))
    assert by_name["epochs"]["elem_classes"] == ["ds-field-error"] and "greater than 0" in by_name["epochs"]["info"]
    assert by_name["batch_size"]["elem_classes"] == []


def test_mount_serves_ui_and_redirects_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISTILL_API_URL", raising=False)
    monkeypatch.delenv("DISTILL_API_TOKEN", raising=False)
    from ui.mount import mount_dashboard

    app = FastAPI()
    mount_dashboard(app)
    with TestClient(app) as c:
        r = c.get("/", follow_redirects=False)
        assert r.status_code in (302, 307) and r.headers["location"] == "/ui/"
        r = c.get("/ui/")
        assert r.status_code == 200 and "<html" in r.text.lower()


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
