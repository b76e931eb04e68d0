"""Pydantic shapes of the REST API (docs/api.md). The run configuration is the core's ``RunConfig``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.tables import Run
from distill.config import RunConfig
from distill.sweep.plan import SweepSpec

RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


class RunOut(BaseModel):
    id: int
    name: str | None
    status: RunStatus
    stage: str | None
    progress: float
    eta_s: float | None
    cancel_requested: bool
    error: str | None
    config: dict[str, Any]
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    output_dir: str | None
    summary: dict[str, Any] | None
    attempts: int = 0
    worker: str | None = None
    parent_id: int | None = None  # set for a benchmark job: the run whose model it measures
    sweep_id: int | None = None  # set for a point of a sweep

    @classmethod
    def of(cls, run: Run) -> "RunOut":
        # Built from typed database columns: no validation needed (model_construct is ~10x cheaper).
        return cls.model_construct(
            id=run.id, name=run.name, status=run.status, stage=run.stage, progress=run.progress or 0.0,
            eta_s=run.eta_s, cancel_requested=bool(run.cancel_requested), error=run.error, config=run.config,
            created_at=iso(run.created_at), started_at=iso(run.started_at), finished_at=iso(run.finished_at),
            output_dir=run.output_dir, summary=run.summary, attempts=run.attempts or 0, worker=run.worker,
            parent_id=run.parent_id, sweep_id=run.sweep_id,
        )


RUN_FIELDS = tuple(RunOut.model_fields)


class RunDetailOut(RunOut):
    """One run (``GET /runs/{id}``): the run plus whether ``POST /runs/{id}/resume`` would queue it."""
    resumable: bool = False
    resume_refused: str | None = None  # why not, when not resumable: the 409's message
    # Where --report_to sent it: the run folder's tracking.json (project, run name, each tracker's ids and store)
    tracking: dict[str, Any] | None = None
_TIMES = ("created_at", "started_at", "finished_at")


def run_dict(row: Any) -> dict[str, Any]:
    """A Run object as a plain dict from a row of ``Run`` columns (the fast path of the reads)."""
    out = dict(zip(RUN_FIELDS, row))  # the row's columns are RUN_FIELDS, in order
    for name in _TIMES:
        out[name] = iso(out[name])
    out["progress"] = out["progress"] or 0.0
    out["cancel_requested"] = bool(out["cancel_requested"])
    out["attempts"] = out["attempts"] or 0
    return out


class RunList(BaseModel):
    items: list[RunOut]
    total: int
    limit: int
    offset: int


class LogLineOut(BaseModel):
    seq: int
    ts: str
    level: str
    message: str


class LogsOut(BaseModel):
    lines: list[LogLineOut]
    next_offset: int


class MetricsOut(BaseModel):
    points: list[dict[str, Any]]


class ArtifactItem(BaseModel):
    name: str
    size: int
    kind: Literal["file", "folder"]


class ArtifactList(BaseModel):
    items: list[ArtifactItem]


class BenchmarkRequest(BaseModel):
    """A benchmark job on a finished run's base and SFT models; unset fields keep the run's own values."""

    model_config = ConfigDict(extra="forbid")

    benchmarks: list[str] | str = Field(description=RunConfig.model_fields["benchmarks"].description)
    benchmark_limit: int | None = Field(None, ge=1, le=1_000_000)
    num_samples: int | None = Field(None, ge=1, le=256)
    temperature: float | None = Field(None, ge=0.0, le=5.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_new_tokens: int | None = Field(None, gt=0, le=131_072)
    max_thinking_tokens: int | None = Field(None, ge=1, le=131_072)
    eval_batch_size: int | None = Field(None, gt=0, le=4096)
    seed: int | None = None
    engine: Literal["hf", "openai", "llamacpp"] | None = Field(
        None, description="Default: a worker's engine that serves the run, else hf")
    engine_url: str | None = None
    engine_base_model: str | None = None
    engine_sft_model: str | None = None
    engine_concurrency: int | None = Field(None, ge=1, le=1024)
    name: str | None = Field(None, max_length=200)


class BenchmarkResultOut(BaseModel):
    id: int
    run_id: int
    job_id: int
    suite: str
    created_at: str | None
    result: dict[str, Any]  # the suite's block of evaluation_results.json["benchmarks"]


class BenchmarksOut(BaseModel):
    run_id: int
    results: list[BenchmarkResultOut]  # newest first
    jobs: list[RunOut]  # benchmark jobs of this run, newest first


class BenchmarkSamplesOut(BaseModel):
    run_id: int
    job_id: int
    suite: str
    result: dict[str, Any]
    records: list[dict[str, Any]]  # per problem: id, prompt, gold, base/sft answers with extracted answer and grade


class LeaderboardRow(BaseModel):
    run_id: int
    run_name: str | None
    model: str | None
    suite: str
    job_id: int
    created_at: str | None
    result: dict[str, Any]


class LeaderboardOut(BaseModel):
    items: list[LeaderboardRow]
    metrics: list[dict[str, Any]]  # the metric table (key, label, unit, scale, decimals, delta_unit, better)


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: int
    prompt: str = Field(min_length=1, max_length=32_000)
    system: str | None = Field(None, max_length=32_000)
    max_new_tokens: int = Field(256, gt=0, le=4096)
    temperature: float = Field(0.0, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)


class GenerationOut(BaseModel):
    text: str
    thinking: str | None = None  # inside <think>…</think>; None without a thought
    answer_part: str = ""  # after the thought
    thinking_closed: bool = True
    new_tokens: int
    time_s: float


class GenerateOut(BaseModel):
    base: GenerationOut
    sft: GenerationOut


class PresetOut(BaseModel):
    description: str
    config: dict[str, Any]


class ModelsOut(BaseModel):
    embedded: str
    builtin: list[str]
    cached: list[str]
    presets: dict[str, PresetOut]


class DatasetOut(BaseModel):
    id: str
    name: str
    kind: Literal["builtin", "upload", "generated"]
    ref: str  # what --dataset takes (a generated dataset: its dataset.jsonl, which the CLI reads too)
    rows: int | None
    report: dict[str, Any] | None = None
    run_id: int | None = None  # a generated dataset: the run that made it
    uses: list[Literal["training", "problems"]] = ["training"]  # problems: a benchmark's, or a teacher's to answer


class SuiteOut(BaseModel):
    name: str
    spec: str  # what to put in benchmarks: the name, or NAME=FILE for an uploaded file of problems
    source: str
    grader: str
    available: bool  # can be loaded here now (a hub suite needs the hub)
    why: str | None = None  # why not
    dataset_id: str | None = None  # an uploaded file's dataset id


class SuiteList(BaseModel):
    items: list[SuiteOut]


class TracesOut(BaseModel):
    run_id: int
    report: dict[str, Any] | None  # data_report.json: the funnel, rejections by reason, the teacher's pass@1
    total: int  # problems matching the filter
    items: list[dict[str, Any]]  # generations.jsonl rows: a problem, its samples and their verdicts


class DatasetList(BaseModel):
    items: list[DatasetOut]


class PreviewRow(BaseModel):
    system: str | None
    prompt: str
    completion: str


class PreviewOut(BaseModel):
    rows: list[PreviewRow]
    report: dict[str, Any] | None


class WorkerOut(BaseModel):
    name: str
    gpus: list[str]
    last_seen: str | None = None
    engine: dict[str, Any] | None = None  # the OpenAI-compatible server it serves models through: {"url", "kind"}


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    database: str
    broker: str
    workers: list[WorkerOut]
    # Runs running on a worker on the API's own machine: {"id", "stage", "worker"}.
    local_runs: list[dict[str, Any]] = []
    version: str
    serving: dict[str, list[str]] = {}  # base model -> the model ids loaded in the API process


class SweepRequest(SweepSpec):
    """A sweep: ``base`` (run configuration fields) plus axes; ``dry_run`` lists the points without queueing."""

    name: str | None = None
    dry_run: bool = False


class SweepPlanOut(BaseModel):
    n_runs: int
    points: list[dict[str, Any]]  # {"name", "overrides", "merged": names of points that were the same run}


class SweepOut(BaseModel):
    id: int
    name: str | None
    status: Literal["running", "finished", "cancelled"]
    created_at: str | None
    finished_at: str | None
    spec: dict[str, Any]
    points: list[dict[str, Any]]  # {"name", "overrides", "merged"}
    # With GET /sweeps/{id}: {"objective", "points": table rows with run_id and status, "verdict", "diff"}.
    summary: dict[str, Any] | None = None

    @classmethod
    def of(cls, sweep: Any, summary: dict[str, Any] | None = None) -> "SweepOut":
        return cls(id=sweep.id, name=sweep.name, status=sweep.status, created_at=iso(sweep.created_at),
                   finished_at=iso(sweep.finished_at), spec=sweep.spec, summary=summary,
                   points=[{k: p[k] for k in ("name", "overrides", "merged")} for p in sweep.points])


class SweepList(BaseModel):
    items: list[SweepOut]


class ExportJobRequest(BaseModel):
    """``POST /runs/{id}/exports``: what ``distill export`` takes. The Hub token is the workers' ``HF_TOKEN``; it is
    never part of a request."""

    model_config = ConfigDict(extra="forbid")

    to: Literal["gguf", "ollama", "hub"] = Field(description="gguf: llama.cpp files; ollama: a GGUF and its "
                                                 "Modelfile; hub: upload to the Hugging Face Hub")
    quants: list[str] = Field(default_factory=list, max_length=10,
                              description="GGUF types (f16, bf16, f32, q8_0; K-quants with llama.cpp's quantizer); "
                                          "default f16 for gguf and ollama, none for hub")
    repo_id: str | None = Field(None, max_length=200, description="hub: the repository, owner/name")
    private: bool = Field(True, description="hub: create the repository private")
    revision: str | None = Field(None, max_length=200, description="hub: the branch to commit to")
    create_pr: bool = Field(False, description="hub: open a pull request instead of committing")
    weights: Literal["merged", "adapter"] = Field("merged", description="hub: the merged model or the LoRA adapter")


class ExportJobOut(BaseModel):
    id: int
    run_id: int
    status: RunStatus
    stage: str | None  # converting, quantizing, modelfile, staging, uploading
    progress: float
    request: dict[str, Any]
    export: str | None  # the finished export's name (GET /runs/{id}/exports lists it)
    error: str | None
    cancel_requested: bool
    worker: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    log: list[dict[str, Any]]  # {"ts", "level", "message"}, oldest first

    @classmethod
    def of(cls, job: Any) -> "ExportJobOut":
        return cls(id=job.id, run_id=job.run_id, status=job.status, stage=job.stage, progress=job.progress or 0.0,
                   request=job.request, export=job.export, error=job.error, cancel_requested=bool(job.cancel_requested),
                   worker=job.worker, created_at=iso(job.created_at), started_at=iso(job.started_at),
                   finished_at=iso(job.finished_at), log=list(job.log or []))


class ExportsOut(BaseModel):
    items: list[dict[str, Any]]  # finished exports, newest first, each file with its download url
    jobs: list[ExportJobOut]  # export jobs of the run, newest first
