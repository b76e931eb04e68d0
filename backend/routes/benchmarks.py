"""/runs/{id}/benchmarks: queue a benchmark job on a run's models, read its results; /benchmarks: the leaderboard."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.deps import Services, services, session
from backend.errors import NotFound
from backend.schemas import (
    BenchmarkRequest,
    BenchmarkResultOut,
    BenchmarkSamplesOut,
    BenchmarksOut,
    LeaderboardOut,
    LeaderboardRow,
    RunOut,
    iso,
)
from backend.tables import BenchmarkResult, Run
from distill.evaluation.summary import metric_catalog
from distill.reasoning import Split

router = APIRouter(tags=["benchmarks"])

# Every column but the (large) per-problem samples.
_SUMMARY_COLUMNS = (BenchmarkResult.id, BenchmarkResult.run_id, BenchmarkResult.job_id, BenchmarkResult.suite,
                    BenchmarkResult.created_at, BenchmarkResult.summary)


def _result(row) -> BenchmarkResultOut:  # noqa: ANN001 - a row of _SUMMARY_COLUMNS
    return BenchmarkResultOut(id=row.id, run_id=row.run_id, job_id=row.job_id, suite=row.suite,
                              created_at=iso(row.created_at), result=row.summary)


@router.post("/runs/{run_id}/benchmarks", status_code=202, response_model=RunOut,
             summary="Queue a benchmark job on the run's base and SFT models (a run of mode evaluate: log, "
                     "cancel and resume as any run)")
async def create_benchmark_job(run_id: int, body: BenchmarkRequest, svc: Services = Depends(services)) -> RunOut:
    return RunOut.of(await run_in_threadpool(svc.runs.create_benchmark_job, run_id, body))


@router.get("/runs/{run_id}/benchmarks", response_model=BenchmarksOut,
            summary="The run's benchmark results (its own evaluation's and its jobs'), newest first, and its jobs")
def get_benchmarks(run_id: int, svc: Services = Depends(services), s: Session = Depends(session)) -> BenchmarksOut:
    svc.runs.get(s, run_id)
    rows = s.execute(select(*_SUMMARY_COLUMNS).where(BenchmarkResult.run_id == run_id)
                     .order_by(BenchmarkResult.id.desc())).all()
    jobs = s.scalars(select(Run).where(Run.parent_id == run_id).order_by(Run.id.desc())).all()
    return BenchmarksOut(run_id=run_id, results=[_result(r) for r in rows], jobs=[RunOut.of(j) for j in jobs])


@router.get("/runs/{run_id}/benchmarks/{suite}", response_model=BenchmarkSamplesOut,
            summary="Every problem of one suite, base and SFT side by side (the newest result, or job_id's)")
def get_benchmark_samples(run_id: int, suite: str, job_id: int | None = Query(None), svc: Services = Depends(services),
                          s: Session = Depends(session)) -> BenchmarkSamplesOut:
    svc.runs.get(s, run_id)
    q = select(BenchmarkResult).where(BenchmarkResult.run_id == run_id, BenchmarkResult.suite == suite)
    if job_id is not None:
        q = q.where(BenchmarkResult.job_id == job_id)
    row = s.scalars(q.order_by(BenchmarkResult.id.desc()).limit(1)).first()
    if row is None:
        raise NotFound(f"run {run_id} has no {suite!r} benchmark result" + (f" from job {job_id}" if job_id else ""))
    # Each answer with its thought and answer apart, so that clients need not split the text themselves.
    records = [{**r, **{m: [{**a, **Split.of(a.get("text", "")).api_fields()} for a in r.get(m, [])]
                        for m in ("base", "sft")}}
               for r in row.samples.get("records", [])]
    return BenchmarkSamplesOut(run_id=run_id, job_id=row.job_id, suite=suite, result=row.summary, records=records)


@router.get("/benchmarks", response_model=LeaderboardOut,
            summary="Leaderboard: each run's newest result per suite (base → SFT pass@1 with interval and test)")
def leaderboard(s: Session = Depends(session)) -> LeaderboardOut:
    rows = s.execute(select(*_SUMMARY_COLUMNS, Run.name, Run.config).join(Run, Run.id == BenchmarkResult.run_id)
                     .order_by(BenchmarkResult.id.desc())).all()
    seen: set[tuple[int, str]] = set()
    items = []
    for r in rows:
        if (r.run_id, r.suite) in seen:
            continue
        seen.add((r.run_id, r.suite))
        items.append(LeaderboardRow(run_id=r.run_id, run_name=r.name, model=(r.config or {}).get("model"),
                                    suite=r.suite, job_id=r.job_id, created_at=iso(r.created_at), result=r.summary))
    items.sort(key=lambda i: (-i.run_id, i.suite))
    return LeaderboardOut(items=items, metrics=metric_catalog())
