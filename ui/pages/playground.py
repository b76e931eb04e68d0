"""Playground: prompt a finished run's base and SFT models at once; both answers stream side by side.

The models answer in the API's process: a run training on the same machine shares its cores, so a line
above the prompt says so (polled while the page is visible), and Stop shows only while answers stream."""

from __future__ import annotations

import time
from typing import Any

import gradio as gr

from ui.answers import response_html
from ui.client import ApiCallError
from ui.manager import Manager
from ui.pages.common import Ctx, run_choices, to_int
from ui.shared import banner_html, esc

PAGE = "playground"
FLUSH_S = 0.08
PLACEHOLDER = '<div class="ds-muted">The answer streams here.</div>'
BUSY_POLL_S = 5.0
# What a running run is doing, by its stage, for the "machine busy" line.
DOING = {"load": "loading its models", "data": "preparing its data", "train": "training",
         "evaluate": "evaluating", "generate": "generating traces", "save": "saving"}


def build(ctx: Ctx, m: Manager) -> None:
    with gr.Row(equal_height=False, elem_classes=["ds-toolbar"]):
        run = gr.Dropdown(label="Finished run (its base model and its fine-tuned SFT model)", choices=[], value=None,
                          scale=4, elem_id="pg-run")
        refresh_btn = gr.Button("↻", size="sm", scale=0, min_width=50, elem_id="pg-refresh")
        eval_prompt = gr.Dropdown(label="…or pick one of its evaluation prompts", choices=[], value=None, scale=4,
                                  elem_id="pg-eval-prompt")
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=320):
            busy = gr.HTML("", elem_id="pg-busy", elem_classes=["ds-collapse"])
            prompt = gr.Textbox(label="Prompt", lines=4, max_lines=12, elem_id="pg-prompt",
                                placeholder="e.g. A pen costs $2. How much do 6 pens cost?  (Shift+Enter: new line)")
            with gr.Row():
                send = gr.Button("▶ Ask both models", variant="primary", elem_id="pg-send", scale=3)
                # Shown only while answers stream: a red button with nothing to stop reads as an error.
                stop = gr.Button("■ Stop", variant="stop", elem_id="pg-stop", scale=1, min_width=90, visible=False)
        with gr.Column(scale=2, min_width=260):
            with gr.Accordion("Generation settings", open=True):
                system = gr.Textbox(label="System prompt (optional)", lines=1, elem_id="pg-system")
                max_new_tokens = gr.Slider(1, 2048, value=256, step=1, label="max_new_tokens", elem_id="pg-max-new")
                temperature = gr.Slider(0.0, 2.0, value=0.0, step=0.05, label="temperature (0 = greedy)",
                                        elem_id="pg-temp")
                top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="top_p", elem_id="pg-top-p")
    banner = gr.HTML("", elem_id="pg-banner", elem_classes=["ds-collapse"])
    with gr.Row(equal_height=False):
        with gr.Column(min_width=300, elem_classes=["ds-stream-col"]):
            gr.Markdown("#### Base model (no adapter)")
            base_timing = gr.HTML("", elem_id="pg-base-timing")
            base_out = gr.HTML(PLACEHOLDER, elem_id="pg-base")
        with gr.Column(min_width=300, elem_classes=["ds-stream-col"]):
            gr.Markdown("#### SFT model (fine-tuned)")
            sft_timing = gr.HTML("", elem_id="pg-sft-timing")
            sft_out = gr.HTML(PLACEHOLDER, elem_id="pg-sft")
    m.add(PAGE, dict(run=run, refresh_btn=refresh_btn, eval_prompt=eval_prompt, prompt=prompt, system=system,
                     max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, send=send, stop=stop,
                     banner=banner, base_out=base_out, sft_out=sft_out, base_timing=base_timing, sft_timing=sft_timing,
                     prompts_state=gr.State([]), busy=busy, timer=gr.Timer(BUSY_POLL_S, active=False)))


def busy_text(runs: list[dict[str, Any]]) -> str:
    """One line naming the runs that share this machine with the models answering here ("" when none)."""
    if not runs:
        return ""
    if len(runs) == 1:
        r = runs[0]
        doing = DOING.get(r.get("stage") or "", "running")
        return f"Run #{r.get('id')} is {doing} on this machine: answers here will be slower until it ends."
    ids = ", ".join(f"#{r.get('id')}" for r in runs)
    return f"Runs {ids} are running on this machine: answers here will be slower until they end."


def busy_html(ctx: Ctx) -> str:
    try:
        runs = ctx.api.health().get("local_runs") or []
    except ApiCallError:
        return ""  # the header's health badge already says the API is not answering
    text = busy_text([r for r in runs if isinstance(r, dict)])
    return banner_html(f"⚙ {text}", "warn") if text else ""


def _timing(side: dict[str, Any] | None, ttft: float | None, elapsed: float, streaming: bool) -> str:
    side = side or {}
    bits = []
    if ttft is not None:
        bits.append(f"first token {ttft:.2f}s")
    n, t = side.get("new_tokens"), side.get("time_s")
    if isinstance(n, (int, float)) and isinstance(t, (int, float)):
        bits.append(f"{int(n)} tokens in {t:.2f}s")
        if t > 0:
            bits.append(f"{n / t:.1f} tok/s")
    elif streaming:
        bits.append(f"{elapsed:.1f}s…")
    return f'<div class="ds-timing">{esc(" · ".join(bits))}</div>' if bits else ""


def add(answer: dict[str, Any], delta: str, part: str) -> None:
    """Append a streamed delta to the thought or the answer, as the API labelled it."""
    if part == "thinking":
        answer["thinking"], answer["thinking_closed"] = (answer["thinking"] or "") + delta, False
    else:
        answer["answer_part"] += delta
        answer["thinking_closed"] = True


def started(answer: dict[str, Any]) -> bool:
    return answer["thinking"] is not None or bool(answer["answer_part"])


async def generate(ctx: Ctx, m: Manager, run_id: Any, prompt: str, system: str, max_new_tokens: float,
                   temperature: float, top_p: float):  # noqa: ANN201
    """Yields (banner, base_html, sft_html, base_timing, sft_timing) as the two streams arrive (a dict
    naming the banner alone when there is nothing to generate)."""
    rid = to_int(run_id)
    if rid is None:
        yield {m[f"{PAGE}.banner"]: banner_html("Pick a finished run first.", "info")}
        return
    if not (prompt or "").strip():
        yield {m[f"{PAGE}.banner"]: banner_html("Type a prompt (or pick an evaluation prompt).", "info")}
        return
    texts = {side: {"thinking": None, "answer_part": "", "thinking_closed": True} for side in ("base", "sft")}
    ttft: dict[str, float | None] = {"base": None, "sft": None}
    done: dict[str, Any] = {}
    t0 = time.monotonic()

    def shown(side: str, streaming: bool) -> str:
        return response_html(texts[side], streaming=streaming, graded=False)

    yield "", shown("base", True), shown("sft", True), _timing(None, None, 0, True), _timing(None, None, 0, True)
    last = 0.0
    settings = {"system": system.strip() or None, "max_new_tokens": int(max_new_tokens), "temperature": float(temperature),
                "top_p": float(top_p)}
    try:
        async for ev in ctx.aapi.generate_stream(rid, prompt, **settings):
            if ev.event in ("base", "sft"):
                try:
                    data = ev.json() or {}
                except ValueError:
                    data = {"delta": ev.data}
                if ttft[ev.event] is None:
                    ttft[ev.event] = time.monotonic() - t0
                add(texts[ev.event], str(data.get("delta", "")), data.get("part", "answer"))
            elif ev.event == "done":
                try:
                    done = ev.json() or {}
                except ValueError:
                    done = {}
                break
            elif ev.event == "error":
                try:
                    msg = (ev.json() or {}).get("detail") or ev.data
                except ValueError:
                    msg = ev.data
                raise ApiCallError(f"generate: {msg}")
            now = time.monotonic()
            if now - last >= FLUSH_S:
                last = now
                yield ("", shown("base", True), shown("sft", True),
                       _timing(None, ttft["base"], now - t0, True), _timing(None, ttft["sft"], now - t0, True))
    except ApiCallError as e:
        el = time.monotonic() - t0
        yield (banner_html(e.message), shown("base", False) if started(texts["base"]) else PLACEHOLDER,
               shown("sft", False) if started(texts["sft"]) else PLACEHOLDER,
               _timing(None, ttft["base"], el, False), _timing(None, ttft["sft"], el, False))
        return
    el = time.monotonic() - t0
    note = "" if done else banner_html("The stream ended before both answers were complete.")
    yield (note, shown("base", False), shown("sft", False),
           _timing(done.get("base"), ttft["base"], el, False), _timing(done.get("sft"), ttft["sft"], el, False))


def succeeded_choices(ctx: Ctx) -> list[tuple[str, int]]:
    return run_choices(ctx.api, status="succeeded", trained_only=True)


def refresh(ctx: Ctx, m: Manager, current: Any) -> dict[Any, Any]:
    p = m.page(PAGE)
    try:
        choices = succeeded_choices(ctx)
    except ApiCallError as e:
        return {p["banner"]: banner_html(e.message)}
    ids = [v for _, v in choices]
    value = to_int(current) if to_int(current) in ids else (ids[0] if ids else None)
    note = "" if choices else banner_html("No finished run yet: launch one (the demo preset takes a few minutes).", "info")
    return {p["run"]: gr.update(choices=choices, value=value), p["banner"]: note, p["busy"]: busy_html(ctx)}


def load_prompts(ctx: Ctx, run_id: Any) -> tuple[Any, list[str]]:
    rid = to_int(run_id)
    if rid is None:
        return gr.update(choices=[], value=None), []
    try:
        ev = ctx.api.get_evaluation(rid) or {}
    except ApiCallError:
        ev = {}
    prompts = [s.get("prompt", "") for s in ev.get("samples") or [] if s.get("prompt")]
    choices = [(f"{i + 1}. {' '.join(p.split())[:90]}", i) for i, p in enumerate(prompts)]
    return gr.update(choices=choices, value=None), prompts


def wire(ctx: Ctx, m: Manager) -> None:
    p = m.page(PAGE)
    p["refresh_btn"].click(lambda r: refresh(ctx, m, r), [p["run"]], [p["run"], p["banner"], p["busy"]])
    p["timer"].tick(lambda: busy_html(ctx), None, p["busy"], show_progress="hidden")
    p["run"].change(lambda r: load_prompts(ctx, r), [p["run"]], [p["eval_prompt"], p["prompts_state"]],
                    show_progress="hidden")

    def pick_prompt(i: Any, prompts: list[str]) -> Any:
        idx = to_int(i)
        return prompts[idx] if idx is not None and 0 <= idx < len(prompts) else gr.skip()

    p["eval_prompt"].input(pick_prompt, [p["eval_prompt"], p["prompts_state"]], [p["prompt"]])
    ins = m.list(*(f"{PAGE}.{n}" for n in ("run", "prompt", "system", "max_new_tokens", "temperature", "top_p")))
    # generate() yields these five in this order (one stream, updated many times a second).
    outs = m.list(*(f"{PAGE}.{n}" for n in ("banner", "base_out", "sft_out", "base_timing", "sft_timing")))

    async def go(*args: Any):  # noqa: ANN202
        async for out in generate(ctx, m, *args):
            yield out

    def stop_shown(on: bool) -> Any:
        return gr.update(visible=on)

    streams = []
    for trigger in (p["send"].click, p["prompt"].submit):
        ev = trigger(lambda: stop_shown(True), None, p["stop"], queue=False, show_progress="hidden").then(
            go, ins, outs, concurrency_limit=None, show_progress="minimal", show_progress_on=[p["send"]])
        ev.then(lambda: stop_shown(False), None, p["stop"], queue=False, show_progress="hidden")
        streams.append(ev)
    # A cancelled stream runs no .then: Stop hides itself.
    p["stop"].click(lambda: stop_shown(False), None, p["stop"], cancels=streams, queue=False, show_progress="hidden")
