"""A slow database query in one request does not freeze the process's streams (real Postgres).

While ``GET /runs`` waits on a deliberately slow query (``SELECT pg_sleep``, issued on the API's own
connection just before the list query), an SSE log stream and ``/v1`` streams (the official ``openai``
client) keep delivering: no gap between arrivals as long as the slow query. Routes that do sync database
work are plain ``def`` (FastAPI's thread pool); with ``async def`` the event loop would wait out the query.
"""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest
from sqlalchemy import event
from svc_helpers import LiveServer, make_settings, migrate, read_sse, wait_for

from backend.store import Store
from backend.tables import LogLine, Run, utcnow

SLOW_S = 2.5


def _runs(settings) -> tuple[int, int]:
    """A finished run with a full model (served on /v1) and a running one (its log streamed)."""
    from distill.models import ensure_local_model, load_model

    with Store(settings, role="api").sessions() as s:
        ids = []
        for status in ("succeeded", "running"):
            run = Run(name=status, status=status, config={"mode": "all", "model": "tiny-random"},
                      created_at=utcnow(), progress=0.5, cancel_requested=False, attempts=1, task_id="t")
            s.add(run)
            s.flush()
            run.output_dir = str(settings.runs_dir / f"run_{run.id}")
            ids.append(run.id)
        s.commit()
    load_model(ensure_local_model("tiny-random")).save_pretrained(settings.runs_dir / f"run_{ids[0]}" / "final_model")
    return ids[0], ids[1]


def _slow_list_query(engine, window: list[float]) -> None:
    """Before the runs list's query, the same connection sleeps in Postgres (once)."""
    def before(conn, cursor, statement, params, context, executemany) -> None:  # noqa: ANN001
        if window or "ORDER BY runs.id DESC" not in statement:
            return
        window.append(time.monotonic())
        cursor.execute(f"SELECT pg_sleep({SLOW_S})")
        window.append(time.monotonic())

    event.listen(engine, "before_cursor_execute", before)


def _write_logs(settings, run_id: int, stop: threading.Event) -> None:
    with Store(settings, role="worker").sessions() as s:
        seq = 1000  # after the service's own lines
        while not stop.is_set():
            seq += 1
            s.add(LogLine(run_id=run_id, seq=seq, ts=utcnow(), level="info", message=f"line {seq}"))
            s.commit()
            time.sleep(0.05)


def _max_gap(times: list[float], start: float, end: float) -> float:
    """The longest stretch of [start, end] without an arrival."""
    points = [start] + sorted(t for t in times if start < t < end) + [end]
    return max(b - a for a, b in zip(points, points[1:], strict=False))


@pytest.mark.slow
def test_streams_keep_flowing_while_a_slow_query_runs(tmp_path, pg_url) -> None:
    settings = make_settings(tmp_path / "home", database_url=pg_url).with_(worker_lost_s=600.0)  # stays "running"
    settings.home.mkdir()
    migrate(settings)
    served, running = _runs(settings)
    stop, window = threading.Event(), []
    log_times: list[float] = []
    token_times: list[float] = []
    with LiveServer(settings) as api:
        _slow_list_query(api.app.state.services.store.engine, window)
        oai = openai.OpenAI(base_url=api.v1, api_key="x", max_retries=0)

        def follow_log() -> None:
            with httpx.Client(timeout=60) as http, http.stream("GET", f"{api.url}/runs/{running}/logs/stream") as r:
                try:
                    for kind, _, _ in read_sse(r):
                        if kind == "log":
                            log_times.append(time.monotonic())
                        if stop.is_set():
                            return
                except httpx.HTTPError:  # the server shut down under the open stream
                    return

        def stream_tokens() -> None:
            while not stop.is_set():
                for chunk in oai.chat.completions.create(
                        model=f"run-{served}", messages=[{"role": "user", "content": "Count to fifty."}],
                        max_tokens=64, temperature=0.8, stream=True):
                    if chunk.choices and chunk.choices[0].delta.content:
                        token_times.append(time.monotonic())

        threads = [threading.Thread(target=f, daemon=True) for f in
                   (lambda: _write_logs(settings, running, stop), follow_log, stream_tokens)]
        for t in threads:
            t.start()
        wait_for(lambda: log_times and token_times, 90, what="both streams (the model loaded)")
        time.sleep(0.5)
        listed = httpx.get(f"{api.url}/runs", timeout=60)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(30)
    assert listed.status_code == 200 and listed.json()["total"] == 2
    start, end = window
    assert end - start >= SLOW_S - 0.1  # the slow query really ran
    log_gap, token_gap = _max_gap(log_times, start, end), _max_gap(token_times, start, end)
    print(f"slow query {end - start:.2f} s; longest gap: log lines {log_gap:.2f} s, /v1 tokens {token_gap:.2f} s")
    assert log_gap < 1.0, f"the log stream stalled {log_gap:.2f} s during a {SLOW_S} s query"
    assert token_gap < 1.0, f"the /v1 stream stalled {token_gap:.2f} s during a {SLOW_S} s query"
