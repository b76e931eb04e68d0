"""/suites: the benchmark suites this server knows, and whether each can be loaded here right now."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from backend.deps import Services, services
from backend.schemas import SuiteList
from distill.evaluation.suites import BUILTIN_SUITES, HELDOUT, hub_source
from distill.hub import unavailable_reason

router = APIRouter(prefix="/suites", tags=["benchmarks"])


@router.get("", response_model=SuiteList,
            summary="Built-in suites (from the hub: available only when it answers) and uploaded files of problems "
                    "(NAME=REF in benchmarks)")
def list_suites(svc: Services = Depends(services)) -> SuiteList:
    offline = unavailable_reason()
    items: list[dict[str, Any]] = []
    for name, suite in BUILTIN_SUITES.items():
        if name == HELDOUT:
            items.append({"name": name, "spec": name, "source": "the run's own held-out training rows",
                          "grader": suite.grader, "available": True, "why": None})
            continue
        why = None if offline is None else f"the Hugging Face Hub cannot be reached ({offline}); upload a copy"
        items.append({"name": name, "spec": name, "source": hub_source(suite), "grader": suite.grader,
                      "available": offline is None, "why": why})
    for ds in svc.datasets.list():
        if ds["kind"] != "builtin" and "problems" in (ds.get("uses") or []):
            stem = "".join(c if c.isalnum() or c in "_-" else "_" for c in ds["name"].rsplit(".", 1)[0])[:40]
            items.append({"name": stem or "mine", "spec": f"{stem or 'mine'}={ds['ref']}", "source": ds["ref"],
                          "grader": "math", "available": True, "why": None, "dataset_id": ds["id"]})
    return SuiteList(items=items)
