"""An in-memory stand-in for the run service, following docs/api.md.

Used by the dashboard's fast tests and by the browser tests that need situations the real
service makes slow or hard to reach (a failed run, thousands of log lines, an API restart).
Runs "train" on a timer: a few seconds from queued to succeeded, with logs, metrics and an
evaluation. Start it with ``python tests/ui/ui_fake_api.py PORT [TOKEN]``.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import ValidationError

from distill.config import RunConfig
from distill.presets import PRESETS


def _now() -> str:
    return datetime.now(UTC).isoformat()


class State:
    def __init__(self) -> None:
        self.runs: dict[int, dict[str, Any]] = {}
        self.logs: dict[int, list[dict[str, Any]]] = {}
        self.metrics: dict[int, list[dict[str, Any]]] = {}
        self.evals: dict[int, dict[str, Any]] = {}
        self.tasks: dict[int, asyncio.Task] = {}
        self.next_id = 1
        self.datasets: list[dict[str, Any]] = [
            {"id": 1, "name": "builtin:reasoning", "kind": "builtin", "ref": "builtin:reasoning", "rows": 1000},
        ]


def _sample(prompt: str, truth: str, base_text: str, sft_text: str, base_ok: bool, sft_ok: bool) -> dict[str, Any]:
    def side(text: str, ok: bool, answer: str) -> dict[str, Any]:
        return {"response": text, "answer": answer, "correct": ok, "quality_score": 0.8 if "<think>" in text else 0.1,
                "num_steps": 3 if "<think>" in text else 1, "has_think_tags": "<think>" in text,
                "new_tokens": 42, "generation_time_s": 0.5, "tokens_per_s": 84.0}
    return {"prompt": prompt, "system": None, "ground_truth": truth, "set": "heldout",
            "base": side(base_text, base_ok, truth if base_ok else "7"), "sft": side(sft_text, sft_ok, truth if sft_ok else "9")}


def _evaluation() -> dict[str, Any]:
    samples = [
        _sample("Tom has 3 apples and buys 4 more. How many apples does he have?", "7", "He has 7 apples.",
                "<think>\nTom starts with 3 apples.\nHe buys 4 more: 3 + 4 = 7.\n</think>\nThe answer is 7.", True, True),
        _sample("A pen costs $2. How much do 6 pens cost?", "12", "6 pens.",
                "<think>\n6 * 2 = 12.\n</think>\nThe answer is 12.", False, True),
    ]
    base = {"n": 2, "accuracy": 0.5, "n_correct": 1, "n_with_ground_truth": 2, "avg_quality_score": 0.1,
            "pct_with_reasoning": 0.0, "pct_with_think_tags": 0.0, "avg_steps": 1.0, "avg_generation_time_s": 0.5,
            "avg_tokens_per_s": 84.0, "avg_new_tokens": 42.0}
    sft = dict(base, accuracy=1.0, n_correct=2, avg_quality_score=0.8, pct_with_reasoning=100.0,
               pct_with_think_tags=100.0, avg_steps=3.0)
    deltas = {k: (sft[k] - base[k]) for k in base if k != "n"}
    return {"summary": {"base": base, "sft": sft}, "deltas": deltas,
            "by_set": {"heldout": {"base": base, "sft": sft}}, "samples": samples,
            "models": {"base": "tiny-random", "sft": "adapter"}}


def create_app(token: str | None = None, step_s: float = 0.25, steps: int = 12, log_burst: int = 0) -> FastAPI:
    app = FastAPI()
    st = State()
    app.state.fake = st

    @app.middleware("http")
    async def auth(request: Request, call_next):  # noqa: ANN001, ANN202
        if token and request.url.path != "/api/v1/health":
            if request.headers.get("authorization") != f"Bearer {token}":
                return JSONResponse({"detail": "missing or wrong bearer token"}, status_code=401)
        return await call_next(request)

    def log(rid: int, msg: str, level: str = "INFO") -> None:
        lines = st.logs.setdefault(rid, [])
        lines.append({"seq": len(lines) + 1, "ts": _now(), "level": level, "message": msg})

    def get(rid: int) -> dict[str, Any]:
        if rid not in st.runs:
            raise HTTPException(404, f"run {rid} not found")
        return st.runs[rid]

    async def simulate(rid: int) -> None:
        run = st.runs[rid]
        cfg = run["config"]
        try:
            await asyncio.sleep(step_s)
            run.update(status="running", stage="load", started_at=_now())
            log(rid, f"loading model {cfg['model']}")
            await asyncio.sleep(step_s)
            if cfg["model"] == "broken-model":
                for i in range(30):
                    log(rid, f"trying to load shard {i}")
                log(rid, "OSError: broken-model is not a model on the hub", "ERROR")
                run.update(status="failed", error="OSError: broken-model is not a model on the hub",
                           finished_at=_now(), stage=None)
                return
            run["stage"] = "data"
            log(rid, f"dataset {cfg['dataset']}: {cfg.get('max_samples') or 1000} rows")
            for _ in range(log_burst):
                log(rid, f"data row check {len(st.logs[rid])}: ok " + "x" * 40)
            run["stage"] = "train"
            for step in range(1, steps + 1):
                while run["cancel_requested"] is False and run.get("_paused"):
                    await asyncio.sleep(0.05)
                if run["cancel_requested"]:
                    log(rid, "cancel requested: saving checkpoint and stopping")
                    run.update(status="cancelled", finished_at=_now(), stage=None)
                    return
                await asyncio.sleep(step_s)
                loss = 2.5 * math.exp(-step / 5) + 0.3
                st.metrics.setdefault(rid, []).append(
                    {"step": step, "epoch": step / steps, "loss": loss, "ce": loss * 0.95, "kl": 0.05 * loss,
                     "lr": 1e-3 * (1 - step / steps), "grad_norm": 1.0, "tokens_per_s": 900 + 10 * step})
                if step % 4 == 0:
                    st.metrics[rid].append({"step": step, "epoch": step / steps, "eval_loss": loss + 0.1})
                run["progress"] = step / steps
                run["eta_s"] = (steps - step) * step_s
                log(rid, f"step {step}/{steps} loss={loss:.4f}")
            run["stage"] = "evaluate"
            log(rid, "evaluating base and SFT on 2 prompts")
            await asyncio.sleep(step_s)
            ev = _evaluation()
            st.evals[rid] = ev
            run["summary"] = {"base": ev["summary"]["base"], "sft": ev["summary"]["sft"], "deltas": ev["deltas"]}
            run.update(status="succeeded", progress=1.0, eta_s=0.0, stage=None, finished_at=_now())
            log(rid, "done: accuracy base 50.0% -> SFT 100.0%")
        except asyncio.CancelledError:
            pass

    @app.get("/api/v1/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "database": "ok", "broker": "ok", "workers": [{"name": "fake", "gpus": 0}],
                "version": "fake"}

    @app.get("/api/v1/config/schema")
    def schema() -> dict[str, Any]:
        return RunConfig.model_json_schema()

    @app.get("/api/v1/models")
    def models() -> dict[str, Any]:
        return {"embedded": "smollm2-135m", "builtin": ["smollm2-135m", "tiny-random"], "cached": [],
                "presets": {k: {"description": v["description"], "config": v["config"]} for k, v in PRESETS.items()}}

    @app.post("/api/v1/runs", status_code=201)
    async def create(request: Request) -> dict[str, Any]:
        body = await request.json()
        name = body.pop("name", None)
        values = dict(body)
        if values.get("preset"):
            values = {**PRESETS[values["preset"]]["config"], **values}
        try:
            cfg = RunConfig(**values, name=name)
        except ValidationError as e:
            errs = [{"loc": ["body", *e_["loc"]], "msg": e_["msg"], "type": e_["type"]} for e_ in e.errors()]
            raise HTTPException(422, errs) from None
        rid = st.next_id
        st.next_id += 1
        st.runs[rid] = {"id": rid, "name": name, "status": "queued", "stage": None, "progress": 0.0, "eta_s": None,
                        "cancel_requested": False, "error": None, "config": cfg.to_json(), "created_at": _now(),
                        "started_at": None, "finished_at": None, "output_dir": f"/tmp/fake/run_{rid}", "summary": None}
        log(rid, "queued")
        st.tasks[rid] = asyncio.create_task(simulate(rid))
        return public(st.runs[rid])

    def public(run: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in run.items() if not k.startswith("_")}

    @app.get("/api/v1/runs")
    def list_runs(status: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        items = [public(r) for r in sorted(st.runs.values(), key=lambda r: -r["id"]) if not status or r["status"] == status]
        return {"items": items[offset: offset + limit], "total": len(items), "limit": limit, "offset": offset}

    @app.get("/api/v1/runs/{rid}")
    def get_run(rid: int) -> dict[str, Any]:
        return public(get(rid))

    @app.delete("/api/v1/runs/{rid}", status_code=204)
    def delete(rid: int) -> Response:
        run = get(rid)
        if run["status"] in ("running", "queued"):
            raise HTTPException(409, f"run {rid} is {run['status']}: cancel it first")
        del st.runs[rid]
        return Response(status_code=204)

    @app.post("/api/v1/runs/{rid}/cancel", status_code=202)
    def cancel(rid: int) -> dict[str, Any]:
        run = get(rid)
        if run["status"] not in ("queued", "running"):
            raise HTTPException(409, f"run {rid} already {run['status']}")
        run["cancel_requested"] = True
        if run["status"] == "queued":
            st.tasks[rid].cancel()
            run.update(status="cancelled", finished_at=_now())
        return public(run)

    @app.post("/api/v1/runs/{rid}/resume", status_code=202)
    def resume(rid: int) -> dict[str, Any]:
        run = get(rid)
        if run["status"] not in ("failed", "cancelled"):
            raise HTTPException(409, f"run {rid} is {run['status']}: only failed or cancelled runs resume")
        run.update(status="queued", cancel_requested=False, error=None, finished_at=None)
        st.tasks[rid] = asyncio.create_task(simulate(rid))
        return public(run)

    @app.get("/api/v1/runs/{rid}/logs")
    def logs(rid: int, offset: int = 0, limit: int = 1000) -> dict[str, Any]:
        get(rid)
        lines = [ln for ln in st.logs.get(rid, []) if ln["seq"] > offset][:limit]
        return {"lines": lines, "next_offset": lines[-1]["seq"] if lines else offset}

    @app.get("/api/v1/runs/{rid}/logs/stream")
    async def log_stream(rid: int, request: Request) -> StreamingResponse:
        get(rid)
        start = int(request.headers.get("last-event-id") or 0)

        async def gen():  # noqa: ANN202
            pos = start
            while True:
                lines = [ln for ln in st.logs.get(rid, []) if ln["seq"] > pos]
                for ln in lines:
                    yield f"event: log\nid: {ln['seq']}\ndata: {json.dumps(ln)}\n\n"
                    pos = ln["seq"]
                run = st.runs.get(rid)
                if run is None or run["status"] in ("succeeded", "failed", "cancelled"):
                    if not [ln for ln in st.logs.get(rid, []) if ln["seq"] > pos]:
                        yield f"event: end\ndata: {json.dumps({'status': run['status'] if run else 'deleted'})}\n\n"
                        return
                await asyncio.sleep(0.1)

        return StreamingResponse(gen(), media_type="text/event-stream")

    @app.get("/api/v1/runs/{rid}/metrics")
    def metrics(rid: int) -> dict[str, Any]:
        get(rid)
        return {"points": st.metrics.get(rid, [])}

    @app.get("/api/v1/runs/{rid}/evaluation")
    def evaluation(rid: int) -> dict[str, Any]:
        get(rid)
        if rid not in st.evals:
            raise HTTPException(404, f"run {rid} has no evaluation yet")
        return st.evals[rid]

    @app.get("/api/v1/runs/{rid}/artifacts")
    def artifacts(rid: int) -> dict[str, Any]:
        run = get(rid)
        items = [{"name": "train.log", "size": 1234, "kind": "file"}]
        if run["status"] == "succeeded":
            items += [{"name": "report.md", "size": 2048, "kind": "file"},
                      {"name": "evaluation_results.json", "size": 4096, "kind": "file"},
                      {"name": "final_model", "size": 3_500_000, "kind": "folder"}]
        return {"items": items}

    @app.get("/api/v1/runs/{rid}/artifacts/{name}")
    def artifact(rid: int, name: str) -> Response:
        get(rid)
        if name == "report.md":
            return PlainTextResponse("# Reasoning distillation: evaluation report\n")
        if name == "train.log":
            return PlainTextResponse("\n".join(ln["message"] for ln in st.logs.get(rid, [])))
        if name in ("evaluation_results.json", "final_model"):
            return Response(b"PK\x05\x06" + b"\0" * 18 if name == "final_model" else b"{}",
                            media_type="application/zip" if name == "final_model" else "application/json")
        raise HTTPException(404, f"no artifact {name!r}")

    @app.get("/api/v1/datasets")
    def datasets() -> dict[str, Any]:
        return {"items": st.datasets}

    @app.post("/api/v1/datasets", status_code=201)
    async def upload(file: UploadFile = File(...)) -> dict[str, Any]:  # noqa: B008
        data = await file.read()
        if not (file.filename or "").endswith((".jsonl", ".json", ".parquet")):
            raise HTTPException(422, "not a supported format: use .jsonl, .json or .parquet")
        rows = len([ln for ln in data.decode(errors="replace").splitlines() if ln.strip()])
        did = len(st.datasets) + 1
        item = {"id": did, "name": file.filename, "kind": "upload", "ref": f"uploads/{did}_{file.filename}", "rows": rows}
        st.datasets.append(item)
        return {**item, "report": {"rows_read": rows, "rows_kept": rows, "skipped": 0}}

    @app.get("/api/v1/datasets/{did}/preview")
    def preview(did: int, n: int = 5) -> dict[str, Any]:
        if not any(d["id"] == did for d in st.datasets):
            raise HTTPException(404, f"dataset {did} not found")
        rows = [{"system": "You are a helpful assistant that thinks step by step.",
                 "prompt": f"Question {i}: what is {i} + {i}?",
                 "completion": f"<think>\n{i} + {i} = {2 * i}.\n</think>\nThe answer is {2 * i}."} for i in range(1, n + 1)]
        return {"rows": rows, "report": {"rows_read": 1000, "rows_kept": 1000, "format": "builtin", "skipped": 0,
                                         "token_length_p50": 120, "token_length_p95": 180}}

    async def _gen_events(body: dict[str, Any]):  # noqa: ANN202
        prompt = body.get("prompt", "")
        base_words = ["The", " answer", " is", " probably", " 12", "."]
        sft_words = ["<think>", "\nLet", " me", " think:", " 6", " *", " 2", " =", " 12.", "\n</think>", "\nThe", " answer", " is", " 12."]
        t0 = asyncio.get_running_loop().time()
        n = max(len(base_words), len(sft_words))
        for i in range(n):
            if i < len(base_words):
                yield "base", base_words[i]
            if i < len(sft_words):
                yield "sft", sft_words[i]
            await asyncio.sleep(0.05)
        dt = asyncio.get_running_loop().time() - t0
        yield "done", {"base": {"new_tokens": len(base_words), "time_s": dt * 0.5},
                       "sft": {"new_tokens": len(sft_words), "time_s": dt}, "prompt_chars": len(prompt)}

    def _check_gen(body: dict[str, Any]) -> None:
        rid = body.get("run_id")
        if rid not in st.runs:
            raise HTTPException(404, f"run {rid} not found")
        if st.runs[rid]["status"] != "succeeded":
            raise HTTPException(409, f"run {rid} has no trained model yet ({st.runs[rid]['status']})")

    @app.post("/api/v1/generate")
    async def generate(request: Request) -> dict[str, Any]:
        body = await request.json()
        _check_gen(body)
        out: dict[str, Any] = {"base": {"text": ""}, "sft": {"text": ""}}
        async for ev, data in _gen_events(body):
            if ev == "done":
                for k in ("base", "sft"):
                    out[k].update(data[k])
            else:
                out[ev]["text"] += data
        return out

    @app.post("/api/v1/generate/stream")
    async def generate_stream(request: Request) -> StreamingResponse:
        body = await request.json()
        _check_gen(body)

        async def gen():  # noqa: ANN202
            async for ev, data in _gen_events(body):
                payload = data if ev == "done" else {"delta": data}
                yield f"event: {ev}\ndata: {json.dumps(payload)}\n\n"

        return StreamingResponse(gen(), media_type="text/event-stream")

    return app


if __name__ == "__main__":
    import uvicorn

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8765
    tok = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
    burst = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    uvicorn.run(create_app(token=tok, log_burst=burst), host="127.0.0.1", port=port, log_level="warning")
