"""/sweeps: plan a sweep (dry run), queue it, read its table and verdict, cancel, resume."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from backend.deps import Services, services
from backend.schemas import SweepList, SweepOut, SweepPlanOut, SweepRequest
from backend.services.sweeps import planned
from distill.sweep.plan import SweepSpec

router = APIRouter(prefix="/sweeps", tags=["sweeps"])


@router.post("", status_code=202, response_model=SweepOut | SweepPlanOut,
             summary="Queue a sweep: every point validated first (422 naming each bad one); with dry_run, only "
                     "the points (the runs it would queue, points that are the same run merged)")
def create_sweep(body: SweepRequest, response: Response, svc: Services = Depends(services)) -> SweepOut | SweepPlanOut:
    spec = SweepSpec(**body.model_dump(exclude={"name", "dry_run"}))
    if body.dry_run:
        points = planned(svc.sessions, svc.settings, spec)
        response.status_code = 200
        return SweepPlanOut(n_runs=len(points), points=[{"name": p.name, "overrides": p.overrides,
                                                         "merged": p.merged} for p in points])
    return SweepOut.of(svc.sweeps.create(spec, body.name))


@router.get("", response_model=SweepList, summary="Sweeps, newest first (without their tables)")
def list_sweeps(svc: Services = Depends(services)) -> SweepList:
    return SweepList(items=[SweepOut.of(s) for s in svc.sweeps.newest_first()])


@router.get("/{sweep_id}", response_model=SweepOut,
            summary="A sweep with its table (each point's objective with its interval, SFT − base, diagnostics, "
                    "wall time, run), the verdict (Holm-corrected paired tests) and the configuration diff")
def get_sweep(sweep_id: int, svc: Services = Depends(services)) -> SweepOut:
    sweep = svc.sweeps.get(sweep_id)
    return SweepOut.of(sweep, svc.sweeps.summary(sweep))


@router.post("/{sweep_id}/cancel", response_model=SweepOut, summary="Cancel the sweep and its unfinished runs")
def cancel_sweep(sweep_id: int, svc: Services = Depends(services)) -> SweepOut:
    return SweepOut.of(svc.sweeps.cancel(sweep_id))


@router.post("/{sweep_id}/resume", response_model=SweepOut,
             summary="Resume a cancelled or finished sweep: failed and cancelled points continue or start again, "
                     "finished ones are kept")
def resume_sweep(sweep_id: int, svc: Services = Depends(services)) -> SweepOut:
    return SweepOut.of(svc.sweeps.resume(sweep_id))
