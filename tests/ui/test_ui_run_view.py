"""The Run page's view model (what it keeps between refreshes) and the Export panel's rules, without a browser:
which parts a refresh keeps, when polling stops, when the Export button and its Cancel are offered."""

from __future__ import annotations

from ui.pages.export_panel import exportable
from ui.pages.exports_view import job_html
from ui.pages.run_detail import Refresh, RunView, needs_poll


def test_following_the_same_run_keeps_what_is_on_screen() -> None:
    prev = RunView(id=4, status="running", points=7, evaluated=False, error="API down", artifacts=["log.txt"],
                   failure=False, jobs_active=True, shown={"jobs": "<table>"})
    view = prev.following(4, "succeeded")
    assert (view.id, view.status, view.points, view.artifacts, view.jobs_active) == (4, "succeeded", 7, ["log.txt"],
                                                                                   True)
    assert view.error is None  # the API answered this time
    view.shown["jobs"] = "<table>new"
    assert prev.shown == {"jobs": "<table>"}  # the refresh edits its own copy
    r = Refresh(4, {"id": 4, "status": "succeeded"}, prev, view)
    assert r.same_run and r.changed


def test_following_another_run_starts_afresh() -> None:
    prev = RunView(id=4, status="succeeded", points=7, evaluated=True, artifacts=["x"], failure=True,
                   shown={"artifacts": "<ul>"})
    view = prev.following(5, "queued")
    assert view == RunView(id=5, status="queued")
    assert view.points == -1 and view.artifacts is None and view.shown == {}
    r = Refresh(5, {"id": 5, "status": "queued"}, prev, view)
    assert not r.same_run and r.changed


def test_polling_stops_once_a_finished_run_is_fully_shown() -> None:
    done = RunView(id=3, status="succeeded", evaluated=True)
    assert not needs_poll(3, done)
    assert needs_poll(4, done)  # another run picked
    assert needs_poll(3, RunView(id=3, status="succeeded", evaluated=False))  # its evaluation not shown yet
    assert needs_poll(3, RunView(id=3, status="succeeded", evaluated=True, jobs_active=True))
    assert needs_poll(3, RunView(id=3, status="succeeded", evaluated=True, error="API down"))
    assert needs_poll(3, RunView(id=3, status="running"))
    assert not needs_poll(3, RunView(id=3, status="failed"))


def test_export_is_offered_for_a_succeeded_run_with_a_model() -> None:
    assert exportable({"id": 1, "status": "succeeded", "config": {"mode": "all"}}) == (True, "")
    ok, why = exportable({"id": 1, "status": "running", "config": {"mode": "all"}})
    assert not ok and why == "A run can be exported once it has succeeded."
    ok, why = exportable({"id": 2, "status": "succeeded", "parent_id": 1, "config": {}})
    assert not ok and "export run #1" in why
    ok, why = exportable({"id": 3, "status": "succeeded", "config": {"mode": "generate"}})
    assert not ok and "trains no model" in why


def test_an_export_jobs_log_sits_in_a_short_box() -> None:
    job = {"id": 9, "status": "running", "progress": 0.5, "stage": "convert", "request": {"to": "gguf"},
           "log": [{"message": f"line {i}"} for i in range(20)]}
    html = job_html(job)
    assert 'data-job="9"' in html
    assert '<div class="ds-export-log"><pre class="ds-logbox" data-lines="12"' in html  # the last LOG_SHOWN lines
    assert "line 19" in html and "line 7" not in html
    assert "ds-export-log" not in job_html({**job, "log": []})
