"""The dashboard's HTTP client against docs/api.md, with httpx's MockTransport (no server)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from ui.client import ApiCallError, ApiClient, AsyncApiClient


def run_async(coro):  # noqa: ANN001, ANN201
    """asyncio.run in its own thread: Playwright's sync API may hold an event loop in this one."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _client(handler, token: str | None = None) -> ApiClient:
    return ApiClient("http://api.test/", token, transport=httpx.MockTransport(handler))


def test_bearer_token_sent_when_set_and_not_otherwise() -> None:
    seen = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req.headers.get("authorization"))
        return httpx.Response(200, json={"items": [], "total": 0, "limit": 50, "offset": 0})

    _client(handler, "s3cret").list_runs()
    _client(handler).list_runs()
    assert seen == ["Bearer s3cret", None]


def test_paths_and_query_follow_the_contract() -> None:
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append((req.method, req.url.path, dict(req.url.params), req.content))
        if req.url.path.endswith("/metrics"):
            return httpx.Response(200, json={"points": [{"step": 1, "loss": 2.0}]})
        if req.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(200, json={"id": 3, "status": "queued", "lines": [], "next_offset": 0, "items": []})

    api = _client(handler)
    api.list_runs(status="running", limit=10, offset=20)
    api.create_run({"model": "tiny-random", "epochs": 1}, name="demo")
    api.get_logs(3, offset=7)
    assert api.get_metrics(3) == [{"step": 1, "loss": 2.0}]
    api.delete_run(3)
    api.cancel_run(3)
    api.resume_run(3)
    assert calls[0][:3] == ("GET", "/api/v1/runs", {"status": "running", "limit": "10", "offset": "20"})
    assert calls[1][:2] == ("POST", "/api/v1/runs")
    assert json.loads(calls[1][3]) == {"model": "tiny-random", "epochs": 1, "name": "demo"}
    assert calls[2][:3] == ("GET", "/api/v1/runs/3/logs", {"offset": "7"})
    assert [c[:2] for c in calls[3:]] == [("GET", "/api/v1/runs/3/metrics"), ("DELETE", "/api/v1/runs/3"),
                                         ("POST", "/api/v1/runs/3/cancel"), ("POST", "/api/v1/runs/3/resume")]


def test_422_becomes_one_line_with_field_errors() -> None:
    detail = [{"loc": ["body", "epochs"], "msg": "Input should be greater than 0", "type": "greater_than"},
              {"loc": ["body", "learning_rate"], "msg": "Input should be greater than 0", "type": "greater_than"}]

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"detail": detail})

    with pytest.raises(ApiCallError) as ei:
        _client(handler).create_run({"epochs": 0, "learning_rate": 0})
    e = ei.value
    assert e.status == 422
    assert e.field_errors == {"epochs": "Input should be greater than 0", "learning_rate": "Input should be greater than 0"}
    assert "\n" not in str(e) and "epochs: Input should be greater than 0" in str(e)


def test_422_marks_every_bad_field_and_model_level_messages() -> None:
    detail = [{"loc": ["body", "num_samples"], "msg": "Input should be greater than or equal to 1"},
              {"loc": ["body", "benchmarks"], "msg": "Value error, benchmark 'nosuch' is not built-in"},
              {"loc": ["body"], "msg": "--mode evaluate needs --sft_model_path"}]

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"detail": detail})

    with pytest.raises(ApiCallError) as ei:
        _client(handler).create_benchmark_job(3, "nosuch", num_samples=0)
    assert ei.value.field_errors == {"num_samples": "Input should be greater than or equal to 1",
                                     "benchmarks": "benchmark 'nosuch' is not built-in"}
    assert "--mode evaluate needs --sft_model_path" in str(ei.value)


def test_a_plain_422_detail_is_the_message() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"detail": "--max_samples: must be at least 1 (got 0)"})

    with pytest.raises(ApiCallError) as ei:
        _client(handler).create_run({"max_samples": 0})
    assert ei.value.field_errors == {} and "--max_samples: must be at least 1" in str(ei.value)


def test_benchmark_endpoints_follow_the_contract() -> None:
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append((req.method, req.url.path, dict(req.url.params), json.loads(req.content) if req.content else None))
        if req.url.path.endswith("/metric-definitions"):
            return httpx.Response(200, json=[{"key": "pass@1", "label": "pass@1"}])
        if req.method == "POST" and req.url.path.endswith("/benchmarks"):
            return httpx.Response(202, json={"id": 9, "parent_id": 3, "status": "queued"})
        return httpx.Response(200, json={"items": [], "metrics": [], "results": [], "jobs": [], "records": []})

    api = _client(handler)
    job = api.create_benchmark_job(3, "gsm8k,mine=mine.jsonl", benchmark_limit=5, num_samples=None, max_new_tokens=32)
    assert job["parent_id"] == 3
    api.run_benchmarks(3)
    api.benchmark_samples(3, "math 500", job_id=9)
    api.benchmark_samples(3, "gsm8k")
    api.leaderboard()
    assert api.metric_definitions() == [{"key": "pass@1", "label": "pass@1"}]
    api.resolve_config({"preset": "demo"})
    assert calls[0] == ("POST", "/api/v1/runs/3/benchmarks", {},
                        {"benchmarks": "gsm8k,mine=mine.jsonl", "benchmark_limit": 5, "max_new_tokens": 32})
    assert calls[1][:2] == ("GET", "/api/v1/runs/3/benchmarks")
    assert calls[2][:3] == ("GET", "/api/v1/runs/3/benchmarks/math 500", {"job_id": "9"})
    assert calls[3][:3] == ("GET", "/api/v1/runs/3/benchmarks/gsm8k", {})
    assert [c[:2] for c in calls[4:]] == [("GET", "/api/v1/benchmarks"), ("GET", "/api/v1/metric-definitions"),
                                         ("POST", "/api/v1/config/resolve")]
    assert calls[-1][3] == {"preset": "demo"}


def test_traces_endpoint_sends_only_the_filters_given() -> None:
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append((req.url.path, dict(req.url.params)))
        if req.url.params.get("verdict") == "bogus":  # as backend/errors.py FieldError answers
            return httpx.Response(422, json={"detail": [{"loc": ["body", "verdict"], "type": "value_error",
                                                         "msg": "unknown verdict 'bogus'; use one of kept, wrong"}]})
        return httpx.Response(200, json={"run_id": 3, "report": None, "total": 0, "items": []})

    api = _client(handler)
    assert api.traces(3)["report"] is None
    api.traces(3, verdict="looping", status="answered", q="apples", offset=20, limit=20)
    api.traces(3, q="")
    assert calls == [("/api/v1/runs/3/traces", {"offset": "0", "limit": "50"}),
                     ("/api/v1/runs/3/traces", {"verdict": "looping", "status": "answered", "q": "apples",
                                                "offset": "20", "limit": "20"}),
                     ("/api/v1/runs/3/traces", {"offset": "0", "limit": "50"})]
    with pytest.raises(ApiCallError, match="unknown verdict 'bogus'") as err:
        api.traces(3, verdict="bogus")
    assert "\n" not in str(err.value) and err.value.field_errors == {
        "verdict": "unknown verdict 'bogus'; use one of kept, wrong"}


def test_409_of_a_benchmark_job_is_one_line() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(409, json={"detail": "run 3 has no trained model yet (status running)"})

    with pytest.raises(ApiCallError, match=r"run 3 has no trained model yet \(status running\) \(409\)"):
        _client(handler).create_benchmark_job(3, ["gsm8k"])


@pytest.mark.parametrize(("status", "body", "expected"), [
    (401, {"detail": "missing bearer token"}, "401 unauthorized"),
    (404, {"detail": "run 9 not found"}, "run 9 not found (404)"),
    (409, {"detail": "run 9 already succeeded"}, "already succeeded (409)"),
    (413, {"detail": "upload is 300 MB; the limit is 200 MB"}, "too large (413)"),
    (500, "<html><body>Internal Server Error</body></html>", "the API failed (500)"),
])
def test_http_errors_are_readable(status: int, body, expected: str) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers={"content-type": "text/html"})
        return httpx.Response(status, json=body)

    with pytest.raises(ApiCallError) as ei:
        _client(handler).get_run(9)
    msg = str(ei.value)
    assert expected in msg and "\n" not in msg and "<html>" not in msg and "Traceback" not in msg
    assert ei.value.status == status


def test_unreachable_api_is_one_readable_line() -> None:
    api = ApiClient("http://127.0.0.1:9", timeout=2)  # port 9 (discard): nothing listens
    with pytest.raises(ApiCallError) as ei:
        api.health()
    assert "cannot reach the API at http://127.0.0.1:9" in str(ei.value) and ei.value.status is None


def test_evaluation_404_means_not_yet() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"detail": "no evaluation yet"})

    assert _client(handler).get_evaluation(1) is None


def test_sse_events_follow_the_spec() -> None:
    text = (": comment\n\nevent: log\nid: 1\ndata: {\"seq\": 1, \"message\": \"a\"}\n\n"
            "event: log\nid: 2\ndata: line one\ndata: line two\n\n"
            "data: plain\n\nevent: end\ndata: {\"status\": \"succeeded\"}\n\n")

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})

    events = list(_client(handler).stream_logs(1))
    assert [e.event for e in events] == ["log", "log", "message", "end"]
    assert [e.id for e in events[:2]] == ["1", "2"]
    assert events[0].json() == {"seq": 1, "message": "a"}
    assert events[1].data == "line one\nline two"
    assert events[3].json() == {"status": "succeeded"}


def test_log_stream_sends_last_event_id() -> None:
    seen = {}

    def handler(req: httpx.Request) -> httpx.Response:
        seen["lei"] = req.headers.get("last-event-id")
        body = 'event: log\nid: 6\ndata: {"seq": 6, "message": "hi"}\n\nevent: end\ndata: {"status": "failed"}\n\n'
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    events = list(_client(handler).stream_logs(4, last_event_id="5"))
    assert seen["lei"] == "5" and [e.event for e in events] == ["log", "end"]


def test_async_generate_stream_interleaves_both_models() -> None:
    body = ('event: base\ndata: {"delta": "Hel"}\n\nevent: sft\ndata: {"delta": "<think>"}\n\n'
            'event: base\ndata: {"delta": "lo"}\n\nevent: done\ndata: {"base": {"new_tokens": 2, "time_s": 0.1}, '
            '"sft": {"new_tokens": 1, "time_s": 0.1}}\n\n')
    got = {}

    def handler(req: httpx.Request) -> httpx.Response:
        got["body"] = json.loads(req.content)
        got["auth"] = req.headers.get("authorization")
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    api = AsyncApiClient("http://api.test", "tok", transport=httpx.MockTransport(handler))

    async def collect() -> list:
        return [(e.event, e.json()) async for e in api.generate_stream(3, "hi", temperature=0.0, system=None)]

    events = run_async(collect())
    assert [e for e, _ in events] == ["base", "sft", "base", "done"]
    assert got["body"] == {"run_id": 3, "prompt": "hi", "temperature": 0.0}
    assert got["auth"] == "Bearer tok"


def test_async_stream_error_status_is_readable() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(409, json={"detail": "run 3 has no model yet"})

    api = AsyncApiClient("http://api.test", transport=httpx.MockTransport(handler))

    async def collect() -> None:
        async for _ in api.generate_stream(3, "hi"):
            pass

    with pytest.raises(ApiCallError, match="run 3 has no model yet"):
        run_async(collect())
