"""A typed HTTP client for the run service's REST API (``docs/api.md``).

The dashboard talks to the service only through this client, so everything the dashboard does
a script can do too. Every failure (refused connection, timeout, 4xx/5xx) becomes an
:class:`ApiCallError` whose ``str()`` is one readable line; 422 validation errors also carry
``field_errors`` (field name -> message, every bad field) so a form can mark each field.

Streaming endpoints (logs, generation) are Server-Sent Events, read with ``httpx-sse`` in both
the sync and the async client.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal, TypedDict

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse, connect_sse

API_PREFIX = "/api/v1"
DEFAULT_TIMEOUT = 10.0
MAX_MESSAGE = 300

RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
STATUSES: tuple[str, ...] = ("queued", "running", "succeeded", "failed", "cancelled")


class Run(TypedDict, total=False):
    id: int
    name: str | None
    status: RunStatus
    stage: str | None
    progress: float | None
    eta_s: float | None
    cancel_requested: bool
    error: str | None
    config: dict[str, Any]
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    output_dir: str | None
    # base/sft/deltas (older per-model metrics), accuracy_test, benchmarks {suite: SuiteResult}
    summary: dict[str, Any] | None
    parent_id: int | None  # set for a benchmark job: the run whose models it measures


class RunPage(TypedDict):
    items: list[Run]
    total: int
    limit: int
    offset: int


class LogLine(TypedDict, total=False):
    seq: int
    ts: str
    level: str
    message: str


class LogPage(TypedDict):
    lines: list[LogLine]
    next_offset: int


class Artifact(TypedDict, total=False):
    name: str
    size: int | None
    kind: Literal["file", "folder"]


class Dataset(TypedDict, total=False):
    id: int | str
    name: str
    kind: Literal["builtin", "upload", "generated"]
    ref: str
    rows: int | None
    report: dict[str, Any]
    run_id: int | None  # a generated dataset: the trace generation that made it
    uses: list[str]  # "training" (rows to train on), "problems" (a benchmark's, or a teacher's to answer)


class Suite(TypedDict, total=False):
    name: str
    spec: str  # what to put in benchmarks: the name, or NAME=FILE for an uploaded file of problems
    source: str
    grader: str
    available: bool  # loads here now (a hub suite needs the hub)
    why: str | None
    dataset_id: str | None  # an uploaded file's dataset id


class GenSide(TypedDict, total=False):
    text: str
    new_tokens: int
    time_s: float


class MetricDefinition(TypedDict):
    key: str
    label: str
    unit: str  # "%", "s" or ""
    scale: float  # value * scale is shown
    decimals: int
    delta_unit: str  # "pp" for percentages: a signed difference uses it instead of unit
    better: int  # +1 higher is better, -1 lower is better, 0 neither


class SuiteResult(TypedDict, total=False):
    """One suite's block: base and SFT pass@1 with interval, diagnostics, the paired test."""

    n_problems: int
    num_samples: int
    grader: str
    source: str
    settings: dict[str, Any]
    base: dict[str, Any]  # pass@1, pass@1_ci, pass@k, cons@n, n_correct, tokens_p50, ..., *_pct
    sft: dict[str, Any]
    # "delta_pass@1", "delta_ci" are keys too (not identifiers)
    p_value: float | None
    test: str
    significant: bool


class BenchmarkResult(TypedDict):
    id: int
    run_id: int
    job_id: int  # == run_id for the run's own evaluation
    suite: str
    created_at: str | None
    result: SuiteResult


class RunBenchmarks(TypedDict):
    run_id: int
    results: list[BenchmarkResult]  # newest first
    jobs: list[Run]


class Sample(TypedDict, total=False):
    text: str
    extracted: str | None
    key: str | None
    correct: bool
    tokens: int
    time_s: float
    think_tokens: int
    finish_reason: str
    truncated: bool
    think_closed: bool
    looping: bool
    forced: bool


class ProblemRecord(TypedDict, total=False):
    id: str
    index: int
    prompt: str
    system: str | None
    gold: str
    base: list[Sample]
    sft: list[Sample]


class SuiteSamples(TypedDict):
    run_id: int
    job_id: int
    suite: str
    result: SuiteResult
    records: list[ProblemRecord]


class LeaderboardRow(TypedDict):
    run_id: int
    run_name: str | None
    model: str | None
    suite: str
    job_id: int
    created_at: str | None
    result: SuiteResult


class TracesPage(TypedDict):
    run_id: int
    # data_report.json (funnel, rejected, teacher, tokens, …); None until the generation has finished
    report: dict[str, Any] | None
    total: int  # problems matching the filter
    items: list[dict[str, Any]]  # generations.jsonl rows: a problem, its samples and their verdicts


class Leaderboard(TypedDict):
    items: list[LeaderboardRow]
    metrics: list[MetricDefinition]


# --------------------------------------------------------------------------- errors

class ApiCallError(Exception):
    """One readable line; ``status`` is the HTTP status (None: no answer at all)."""

    def __init__(self, message: str, status: int | None = None, field_errors: dict[str, str] | None = None) -> None:
        self.message = one_line(message)
        self.status = status
        self.field_errors: dict[str, str] = dict(field_errors or {})
        super().__init__(self.message)


def one_line(text: Any, limit: int = MAX_MESSAGE) -> str:
    """Whitespace collapsed, cut at ``limit`` characters with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _field_errors_from_detail(detail: Any) -> tuple[str, dict[str, str]]:
    """(summary line, field -> message) from a 422 ``detail``: a list naming every bad field."""
    if not isinstance(detail, list):
        return str(detail), {}
    fields: dict[str, str] = {}
    parts: list[str] = []
    for item in detail:
        if not isinstance(item, dict):
            parts.append(str(item))
            continue
        loc = [str(x) for x in item.get("loc", []) if x not in ("body", "query", "path")]
        msg = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        if loc and loc[0]:
            fields.setdefault(loc[0], msg)
            parts.append(f"{'.'.join(loc)}: {msg}")
        else:
            parts.append(msg)
    return "; ".join(parts) or "invalid request", fields


def error_from_response(resp: httpx.Response, what: str = "") -> ApiCallError:
    """An :class:`ApiCallError` for a non-2xx answer, using the API's ``{"detail": ...}``."""
    status = resp.status_code
    try:
        body = resp.json()
        detail = body.get("detail") if isinstance(body, dict) else body
    except (ValueError, json.JSONDecodeError):
        detail = None
    if detail is None:
        text = (resp.text or "").strip()
        detail = text if text and not text.lstrip().startswith("<") else resp.reason_phrase
    prefix = f"{what}: " if what else ""
    if status == 401:
        return ApiCallError(
            f"{prefix}the API refused the request (401 unauthorized): it needs a token. "
            "Set DISTILL_API_TOKEN for the dashboard (and log in with it).", status)
    if status == 403:
        return ApiCallError(f"{prefix}forbidden (403): {one_line(detail)}", status)
    if status == 422:
        summary, fields = _field_errors_from_detail(detail)
        return ApiCallError(f"{prefix}invalid: {summary}", status, fields)
    if status == 413:
        return ApiCallError(f"{prefix}too large (413): {one_line(detail)}", status)
    if status >= 500:
        return ApiCallError(f"{prefix}the API failed ({status}): {one_line(detail)}", status)
    return ApiCallError(f"{prefix}{one_line(detail)} ({status})", status)


def error_from_exception(exc: Exception, base_url: str, what: str = "") -> ApiCallError:
    prefix = f"{what}: " if what else ""
    if isinstance(exc, ApiCallError):
        return exc
    if isinstance(exc, httpx.ConnectError):
        return ApiCallError(f"{prefix}cannot reach the API at {base_url} (connection refused): is the server running? "
                            "Retrying automatically.")
    if isinstance(exc, httpx.TimeoutException):
        return ApiCallError(f"{prefix}the API at {base_url} did not answer in time ({type(exc).__name__}).")
    if isinstance(exc, httpx.RemoteProtocolError):
        return ApiCallError(f"{prefix}the connection to the API at {base_url} was cut (the server may be restarting).")
    if isinstance(exc, httpx.HTTPError):
        return ApiCallError(f"{prefix}HTTP error talking to {base_url}: {one_line(exc) or type(exc).__name__}")
    return ApiCallError(f"{prefix}{type(exc).__name__}: {one_line(exc)}")


# --------------------------------------------------------------------------- clients

def _clean_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None and v != ""}


class _Base:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token or None
        self.timeout = timeout

    @property
    def headers(self) -> dict[str, str]:
        h = {"Accept": "application/json"}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        return h

    def url(self, path: str) -> str:
        return f"{self.base_url}{API_PREFIX}{path}"

    def artifact_url(self, run_id: int, name: str) -> str:
        from urllib.parse import quote

        return self.url(f"/runs/{int(run_id)}/artifacts/{quote(name)}")


class ApiClient(_Base):
    """Synchronous client (one ``httpx.Client``, connection pooling, thread-safe)."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, token, timeout)
        self._http = httpx.Client(timeout=timeout, transport=transport, headers=self.headers)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing
    def request(self, method: str, path: str, what: str = "", **kw: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, self.url(path), **kw)
        except Exception as e:  # noqa: BLE001 - every transport failure becomes one readable line
            raise error_from_exception(e, self.base_url, what) from None
        if resp.status_code >= 400:
            raise error_from_response(resp, what)
        return resp

    def _json(self, method: str, path: str, what: str = "", **kw: Any) -> Any:
        resp = self.request(method, path, what, **kw)
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise ApiCallError(f"{what + ': ' if what else ''}the API answered something that is not JSON "
                               f"({resp.headers.get('content-type', '?')})", resp.status_code) from None

    # -- service
    def health(self) -> dict[str, Any]:
        return self._json("GET", "/health", "health")

    def models(self) -> dict[str, Any]:
        return self._json("GET", "/models", "models")

    def config_schema(self) -> dict[str, Any]:
        return self._json("GET", "/config/schema", "config schema")

    def resolve_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """The final configuration (defaults < preset < fields); 422 names every bad field."""
        return self._json("POST", "/config/resolve", "resolve config", json=config)

    def metric_definitions(self) -> list[MetricDefinition]:
        return list(self._json("GET", "/metric-definitions", "metric definitions") or [])

    # -- runs
    def create_run(self, config: dict[str, Any], name: str | None = None) -> Run:
        body = dict(config)
        if name:
            body["name"] = name
        return self._json("POST", "/runs", "launch", json=body)

    def list_runs(self, status: str | None = None, limit: int = 50, offset: int = 0) -> RunPage:
        params = _clean_params({"status": status, "limit": limit, "offset": offset})
        return self._json("GET", "/runs", "runs", params=params)

    def get_run(self, run_id: int) -> Run:
        return self._json("GET", f"/runs/{int(run_id)}", f"run {run_id}")

    def delete_run(self, run_id: int) -> None:
        self._json("DELETE", f"/runs/{int(run_id)}", f"delete run {run_id}")

    def cancel_run(self, run_id: int) -> Run:
        return self._json("POST", f"/runs/{int(run_id)}/cancel", f"cancel run {run_id}")

    def resume_run(self, run_id: int) -> Run:
        return self._json("POST", f"/runs/{int(run_id)}/resume", f"resume run {run_id}")

    def get_logs(self, run_id: int, offset: int = 0, limit: int | None = None) -> LogPage:
        params = _clean_params({"offset": offset, "limit": limit})
        return self._json("GET", f"/runs/{int(run_id)}/logs", f"logs of run {run_id}", params=params)

    def get_metrics(self, run_id: int) -> list[dict[str, Any]]:
        data = self._json("GET", f"/runs/{int(run_id)}/metrics", f"metrics of run {run_id}")
        return list((data or {}).get("points", []))

    def get_evaluation(self, run_id: int) -> dict[str, Any] | None:
        """The evaluation results, or None while there are none yet (404)."""
        try:
            return self._json("GET", f"/runs/{int(run_id)}/evaluation", f"evaluation of run {run_id}")
        except ApiCallError as e:
            if e.status == 404:
                return None
            raise

    def list_artifacts(self, run_id: int) -> list[Artifact]:
        data = self._json("GET", f"/runs/{int(run_id)}/artifacts", f"artifacts of run {run_id}")
        return list((data or {}).get("items", []))

    def list_exports(self, run_id: int) -> list[dict[str, Any]]:
        """What ``distill export`` wrote for the run, newest first, each file with its API url."""
        data = self._json("GET", f"/runs/{int(run_id)}/exports", f"exports of run {run_id}")
        return list((data or {}).get("items", []))

    def run_exports(self, run_id: int) -> dict[str, Any]:
        """{"items": the finished exports, "jobs": the run's export jobs}, newest first."""
        return self._json("GET", f"/runs/{int(run_id)}/exports", f"exports of run {run_id}") or {}

    def create_export_job(self, run_id: int, to: str, **options: Any) -> dict[str, Any]:
        """Queue an export job (202). ``options``: quants, repo_id, private, revision, create_pr, weights."""
        return self._json("POST", f"/runs/{int(run_id)}/exports", f"export run {run_id}",
                          json={"to": to, **_clean_params(options)})

    def cancel_export_job(self, job_id: int) -> dict[str, Any]:
        """A queued export job is cancelled at once, a running one before its next step; 409 once it has ended."""
        return self._json("POST", f"/export-jobs/{int(job_id)}/cancel", f"cancel export job {job_id}")

    def download_artifact(self, run_id: int, name: str, dest: str) -> str:
        """Stream an artifact (a folder comes as a zip) to the file ``dest``; returns ``dest``."""
        what = f"download {name}"
        try:
            with self._http.stream("GET", self.artifact_url(run_id, name), timeout=httpx.Timeout(self.timeout, read=300)) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise error_from_response(resp, what)
                with open(dest, "wb") as f:
                    f.writelines(resp.iter_bytes(1 << 20))
        except ApiCallError:
            raise
        except Exception as e:  # noqa: BLE001
            raise error_from_exception(e, self.base_url, what) from None
        return dest

    # -- benchmarks
    def create_benchmark_job(self, run_id: int, benchmarks: str | list[str], **settings: Any) -> Run:
        """Queue a benchmark job on the run's base and SFT models (202); unset settings keep the run's own.

        ``settings``: benchmark_limit, num_samples, temperature, top_p, max_new_tokens, max_thinking_tokens,
        eval_batch_size, seed, name. 409: the run has no trained model yet, or is itself a job."""
        body = {"benchmarks": benchmarks, **_clean_params(settings)}
        return self._json("POST", f"/runs/{int(run_id)}/benchmarks", f"benchmark run {run_id}", json=body)

    def run_benchmarks(self, run_id: int) -> RunBenchmarks:
        return self._json("GET", f"/runs/{int(run_id)}/benchmarks", f"benchmarks of run {run_id}")

    def benchmark_samples(self, run_id: int, suite: str, job_id: int | None = None) -> SuiteSamples:
        """Every problem of one suite with base and SFT answers (the newest result, or ``job_id``'s)."""
        from urllib.parse import quote

        return self._json("GET", f"/runs/{int(run_id)}/benchmarks/{quote(suite, safe='')}", f"{suite} of run {run_id}",
                          params=_clean_params({"job_id": job_id}), timeout=httpx.Timeout(self.timeout, read=60))

    def list_suites(self) -> list[Suite]:
        """The suites this server knows, each with whether it loads here now (and why not)."""
        data = self._json("GET", "/suites", "suites")
        return list((data or {}).get("items", []))

    def leaderboard(self) -> Leaderboard:
        return self._json("GET", "/benchmarks", "leaderboard")

    def compare_runs(self, run_ids: list[int]) -> dict[str, Any]:
        """The configuration that differs between the runs and, per suite they all answered, every pair tested."""
        return self._json("GET", "/compare", "compare", params={"runs": ",".join(str(int(i)) for i in run_ids)})

    # -- sweeps
    def create_sweep(self, body: dict[str, Any]) -> dict[str, Any]:
        """Queue a sweep (202), or with ``dry_run`` only its points (200); 422 names every bad axis or point."""
        return self._json("POST", "/sweeps", "sweep", json=body)

    def list_sweeps(self) -> list[dict[str, Any]]:
        return list((self._json("GET", "/sweeps", "sweeps") or {}).get("items", []))

    def get_sweep(self, sweep_id: int) -> dict[str, Any]:
        return self._json("GET", f"/sweeps/{int(sweep_id)}", f"sweep {sweep_id}")

    def cancel_sweep(self, sweep_id: int) -> dict[str, Any]:
        return self._json("POST", f"/sweeps/{int(sweep_id)}/cancel", f"cancel sweep {sweep_id}")

    def resume_sweep(self, sweep_id: int) -> dict[str, Any]:
        return self._json("POST", f"/sweeps/{int(sweep_id)}/resume", f"resume sweep {sweep_id}")

    # -- trace generation
    def traces(self, run_id: int, verdict: str | None = None, status: str | None = None, q: str | None = None,
               offset: int = 0, limit: int = 50) -> TracesPage:
        """One page of a trace generation's problems (filtered by a sample's verdict, the problem's status, text
        in the problem), with its report; 404 for a run without a teacher, 422 for an unknown verdict/status."""
        params = _clean_params({"verdict": verdict, "status": status, "q": q or None, "offset": offset, "limit": limit})
        return self._json("GET", f"/runs/{int(run_id)}/traces", f"traces of run {run_id}", params=params,
                          timeout=httpx.Timeout(self.timeout, read=60))

    # -- datasets
    def list_datasets(self) -> list[Dataset]:
        data = self._json("GET", "/datasets", "datasets")
        return list((data or {}).get("items", []))

    def upload_dataset(self, path: str, filename: str | None = None) -> Dataset:
        import os

        name = filename or os.path.basename(path)
        with open(path, "rb") as f:
            return self._json("POST", "/datasets", f"upload {name}", files={"file": (name, f)},
                              timeout=httpx.Timeout(self.timeout, write=300, read=300))

    def dataset_preview(self, dataset_id: int | str, n: int = 5) -> dict[str, Any]:
        return self._json("GET", f"/datasets/{dataset_id}/preview", "dataset preview", params={"n": n},
                          timeout=httpx.Timeout(self.timeout, read=120))

    # -- generation
    def generate(self, run_id: int, prompt: str, **settings: Any) -> dict[str, GenSide]:
        body = _clean_params({"run_id": run_id, "prompt": prompt, **settings})
        return self._json("POST", "/generate", "generate", json=body, timeout=httpx.Timeout(self.timeout, read=600))

    # -- streams (sync)
    def stream_events(self, method: str, path: str, what: str = "", last_event_id: str | None = None,
                      read_timeout: float | None = 60.0, **kw: Any) -> Iterator[ServerSentEvent]:
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        try:
            with connect_sse(self._http, method, self.url(path), headers=headers,
                             timeout=httpx.Timeout(self.timeout, read=read_timeout), **kw) as source:
                if source.response.status_code >= 400:
                    source.response.read()
                    raise error_from_response(source.response, what)
                yield from source.iter_sse()
        except ApiCallError:
            raise
        except Exception as e:  # noqa: BLE001
            raise error_from_exception(e, self.base_url, what) from None

    def stream_logs(self, run_id: int, last_event_id: str | None = None) -> Iterator[ServerSentEvent]:
        return self.stream_events("GET", f"/runs/{int(run_id)}/logs/stream", f"log stream of run {run_id}",
                                  last_event_id=last_event_id)

    def generate_stream(self, run_id: int, prompt: str, **settings: Any) -> Iterator[ServerSentEvent]:
        body = _clean_params({"run_id": run_id, "prompt": prompt, **settings})
        return self.stream_events("POST", "/generate/stream", "generate", json=body, read_timeout=600)


class AsyncApiClient(_Base):
    """Async client for the long-lived streams (so a waiting stream holds no server thread)."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(base_url, token, timeout)
        self._transport = transport

    async def stream_events(self, method: str, path: str, what: str = "", last_event_id: str | None = None,
                            read_timeout: float | None = 60.0, **kw: Any) -> AsyncIterator[ServerSentEvent]:
        headers = dict(self.headers)
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(self.timeout, read=read_timeout),
                                         transport=self._transport) as http:
                async with aconnect_sse(http, method, self.url(path), headers=headers, **kw) as source:
                    if source.response.status_code >= 400:
                        await source.response.aread()
                        raise error_from_response(source.response, what)
                    async for ev in source.aiter_sse():
                        yield ev
        except ApiCallError:
            raise
        except Exception as e:  # noqa: BLE001
            raise error_from_exception(e, self.base_url, what) from None

    def stream_logs(self, run_id: int, last_event_id: str | None = None) -> AsyncIterator[ServerSentEvent]:
        return self.stream_events("GET", f"/runs/{int(run_id)}/logs/stream", f"log stream of run {run_id}",
                                  last_event_id=last_event_id)

    def generate_stream(self, run_id: int, prompt: str, **settings: Any) -> AsyncIterator[ServerSentEvent]:
        body = _clean_params({"run_id": run_id, "prompt": prompt, **settings})
        return self.stream_events("POST", "/generate/stream", "generate", json=body, read_timeout=600)
