"""Launch: every run-configuration field, grouped, with defaults and help; presets; dataset picker; Launch.

The request holds the preset plus only the fields that differ from what the API resolves for that
preset (``POST /config/resolve``), so the CLI command shown is short and equivalent. The page opens on the
demo preset; edits are kept until another preset is chosen, which says which of them it replaced.
"""

from __future__ import annotations

import json
import math
import os
import shlex
from collections.abc import Sequence
from typing import Any

import gradio as gr

from ui.client import ApiCallError
from ui.manager import Manager, merge
from ui.pages.common import GROUP_TITLES, Ctx, FieldSpec, error_text
from ui.pages.traces_view import funnel_html
from ui.shared import banner_html, esc, finite, kv_html

PAGE = "launch"
NO_PRESET = ""
# What the page opens on (README: "the Launch page has the demo preset filled in"): ~6 minutes on 2 CPU cores.
DEFAULT_PRESET = "demo"
# The plain defaults: builtin:reasoning's 1,000 rows x 3 epochs, then base vs SFT on 100 held-out problems.
NO_PRESET_LABEL = ("No preset (the plain defaults): 1,000 built-in problems, 3 epochs, base vs SFT on 100 held-out "
                   "— about an hour on 2 CPU cores")
WIDE_FIELDS = {"model", "dataset", "output_dir", "sft_model_path", "lora_target_modules", "name", "benchmarks",
               "teacher_model", "teacher_url", "teacher_prompt", "teacher_system", "decontaminate"}
MULTILINE_FIELDS = {"teacher_prompt": 3, "teacher_system": 2}  # prompts: their line breaks are part of them
NO_SCHEMA = ("The API did not answer when the dashboard started, so the run form could not be built from its "
             "schema. Restart the dashboard once the API is up.")


# --------------------------------------------------------------------------- form values

def split_list(value: Any) -> list[str]:
    """``"gsm8k, math500=data/m.jsonl"`` → ``["gsm8k", "math500=data/m.jsonl"]``."""
    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    return [str(x).strip() for x in items if str(x).strip()]


def coerce(spec: FieldSpec | None, value: Any) -> Any:
    """A form value as the API wants it (empty optional → None, whole floats of int fields → int,
    a comma-separated list → a list)."""
    if spec is None:
        return value
    if spec.kind == "list":
        items = split_list(value)
        # An empty optional list is its default (decontaminate: the benchmarks), not "none at all".
        return None if not items and spec.nullable else items
    if value is None or (isinstance(value, str) and not value.strip()):
        return None if spec.nullable or spec.kind != "str" else ""
    if spec.kind in ("int", "float"):
        try:
            f = float(value)
        except (TypeError, ValueError):
            return value.strip() if isinstance(value, str) else value  # the API says what is wrong with it
        if spec.kind == "int" and f.is_integer():
            return int(f)
        return f
    if spec.kind == "bool":
        return bool(value)
    if isinstance(value, str):
        return value.strip()
    return value


def shown_value(spec: FieldSpec, value: Any) -> Any:
    """A configuration value as its form field shows it."""
    if spec.kind == "list":
        return ",".join(split_list(value))
    if value is None and (spec.kind == "str" or spec.nullable):
        return ""
    if spec.nullable and spec.kind in ("int", "float"):
        return str(value)
    return value


def config_diff(values: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """Fields whose value differs from ``baseline`` (defaults + preset), dropping empty optionals."""
    out = {}
    for k, v in values.items():
        if v is None and baseline.get(k) is None:
            continue
        if k in baseline and _same(v, baseline[k]):
            continue
        out[k] = v
    return out


def _same(a: Any, b: Any) -> bool:
    if finite(a) and finite(b):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)
    return a == b


def _num(v: Any) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return str(v)


def cli_command(body: dict[str, Any]) -> str:
    """``distill --flag value …`` for a POST /runs body (booleans as --flag / --no-flag, lists comma-joined)."""
    parts = ["distill"]
    for k, v in body.items():
        if v is None:
            continue
        if isinstance(v, bool):
            parts.append(f"--{k}" if v else f"--no-{k}")
        else:
            parts += [f"--{k}", shlex.quote(_num(v))]
    return " ".join(parts)


def curl_command(api_base: str, body: dict[str, Any], with_token: bool) -> str:
    auth = ' \\\n  -H "Authorization: Bearer $DISTILL_API_TOKEN"' if with_token else ""
    data = json.dumps(body, separators=(", ", ": "))
    return (f"curl -sS -X POST {shlex.quote(api_base.rstrip('/') + '/api/v1/runs')}{auth} \\\n"
            f"  -H 'Content-Type: application/json' \\\n  -d {shlex.quote(data)}")


def preview_html(rows: Sequence[dict[str, Any]]) -> str:
    """Converted training rows: system, prompt, and the completion with its ``<think>`` block."""
    if not rows:
        return '<div class="ds-muted">No rows.</div>'
    cards = []
    for i, r in enumerate(rows, start=1):
        system = r.get("system")
        cards.append(
            f'<div class="ds-sample"><div class="ds-sample-head"><span class="ds-sample-n">row {i}</span></div>'
            + (f'<div class="ds-small ds-muted">system: {esc(system)}</div>' if system else "")
            + f'<div class="ds-prompt">{esc(r.get("prompt"))}</div>'
            + '<div class="ds-col-title">completion (as trained)</div>'
            + f'<pre class="ds-raw">{esc(r.get("completion"))}</pre></div>'
        )
    return "".join(cards)


def form_values(ctx: Ctx, values: list[Any]) -> dict[str, Any]:
    return {name: coerce(ctx.schema.get(name), v) for name, v in zip(ctx.schema.names, values, strict=True)}


def baseline(ctx: Ctx, preset: str | None) -> dict[str, Any]:
    """What the API makes of the preset alone (``POST /config/resolve``), asked once per preset; while the
    API does not answer, the schema's defaults."""
    key = preset or NO_PRESET
    if key not in ctx.resolved:
        try:
            ctx.resolved[key] = ctx.api.resolve_config({"preset": preset} if preset else {})
        except ApiCallError:
            return dict(ctx.schema.defaults)
    return ctx.resolved[key]


def request_body(ctx: Ctx, preset: str | None, values: list[Any]) -> dict[str, Any]:
    """The POST /runs body: the preset plus every field that differs from what the preset/defaults give."""
    current = form_values(ctx, values)
    body: dict[str, Any] = {"preset": preset} if preset else {}
    body.update(config_diff(current, baseline(ctx, preset)))
    return body


def commands(ctx: Ctx, preset: str | None, values: list[Any]) -> tuple[str, str]:
    body = request_body(ctx, preset, values)
    return cli_command(body), curl_command(ctx.public_api_url, body, bool(ctx.token))


# --------------------------------------------------------------------------- page

def _component(spec: FieldSpec) -> gr.components.Component:
    common = dict(label=spec.name, info=spec.help, elem_id=f"field-{spec.name}",
                  min_width=380 if spec.name in WIDE_FIELDS else 200)
    if spec.kind == "bool":
        return gr.Checkbox(value=bool(spec.default), **common)
    if spec.kind == "enum":
        return gr.Dropdown(choices=spec.choices, value=spec.default, **common)
    if spec.name in ("model", "dataset"):
        choices = [spec.default] if spec.default else []
        return gr.Dropdown(choices=choices, value=spec.default, allow_custom_value=True, filterable=True, **common)
    if spec.kind == "list":
        return gr.Textbox(value=shown_value(spec, spec.default), placeholder="comma-separated", **common)
    if spec.kind in ("int", "float") and not spec.nullable:
        return gr.Number(value=spec.default, precision=0 if spec.kind == "int" else None, **common)
    if spec.kind in ("int", "float"):  # optional number: a text box, so "empty = default" is possible
        return gr.Textbox(value="" if spec.default is None else str(spec.default), placeholder="(empty: default)",
                          **common)
    return gr.Textbox(value=spec.default or "", placeholder="(empty: default)" if spec.nullable else None,
                      lines=MULTILINE_FIELDS.get(spec.name, 1), **common)


def field_list(ctx: Ctx, m: Manager) -> list[Any]:
    """The form's fields in schema order."""
    return [m[f"{PAGE}.field_{n}"] for n in ctx.schema.names]


def build(ctx: Ctx, m: Manager) -> None:
    e: dict[str, Any] = {}
    gr.Markdown(
        "The form opens on the **demo** preset; pick another preset (or none), adjust any field, then **Launch**. "
        "The run opens on its own page, where logs and curves stream live. To have a teacher model write a "
        "training dataset, set `mode` to generate and fill the **Teacher** fields (`dataset` holds the problems); "
        "its traces show on the Traces page.",
        elem_classes=["ds-muted"],
    )
    with gr.Row(equal_height=False):
        e["preset"] = gr.Dropdown(label="Preset", choices=[(NO_PRESET_LABEL, NO_PRESET)], value=NO_PRESET,
                                  scale=3, elem_id="preset-pick", info="Fills the form; you can still change any field.")
        e["launch_btn"] = gr.Button("▶ Launch run", variant="primary", scale=1, elem_id="launch-btn", min_width=160)
    e["preset_info"] = gr.Markdown("", elem_id="preset-info")
    e["banner"] = gr.HTML(banner_html(NO_SCHEMA) if not ctx.schema.fields else "", elem_id="launch-banner",
                          elem_classes=["ds-collapse"])
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=320):
            for group, specs in ctx.schema.by_group().items():
                with gr.Group(elem_id=f"group-{group}"):
                    gr.Markdown(f"### {GROUP_TITLES.get(group, group.title())}", padding=True)
                    with gr.Row(equal_height=False):
                        for spec in specs:
                            e[f"field_{spec.name}"] = _component(spec)
                    if group == "data":
                        with gr.Row(equal_height=False):
                            e["ds_pick"] = gr.Dropdown(
                                label="Dataset picker", choices=[], value=None, scale=3, elem_id="dataset-pick",
                                info="Known datasets; picking one fills `dataset` and shows a preview")
                            e["ds_upload"] = gr.UploadButton(
                                "⬆ Upload .jsonl/.json/.parquet", file_types=[".jsonl", ".json", ".parquet"],
                                scale=1, min_width=160, size="md", elem_id="dataset-upload")
        with gr.Column(scale=2, min_width=320):
            gr.Markdown("#### Same run from a terminal")
            e["cli"] = gr.Code(label="CLI (runs in this shell, no server)", language="shell", interactive=False,
                               value="distill", elem_classes=["ds-code"], elem_id="cli-cmd", lines=2)
            e["curl"] = gr.Code(label="REST API (curl)", language="shell", interactive=False, elem_classes=["ds-code"],
                                elem_id="curl-cmd", lines=4)
            gr.Markdown("#### Training data preview")
            e["ds_preview"] = gr.HTML('<div class="ds-muted">Pick a dataset above to see a few rows as they are '
                                      "trained (converted to the <code>&lt;think&gt;</code> format).</div>",
                                      elem_id="dataset-preview", max_height=520)
            e["ds_report"] = gr.HTML("", elem_id="dataset-report")
    e["presets_state"] = gr.State({})
    e["preset_state"] = gr.State(NO_PRESET)  # the preset the form was last filled from: what "your edits" differ from
    e["datasets_state"] = gr.State([])
    m.add(PAGE, e)


def field_updates(ctx: Ctx, m: Manager, errors: dict[str, str]) -> dict[Any, Any]:
    """Each field's help text, or its validation error (red) when the API refused it: every bad field."""
    out = {}
    for spec in ctx.schema.fields:
        msg = errors.get(spec.name)
        out[m[f"{PAGE}.field_{spec.name}"]] = (gr.update(info=f"⚠ {msg}", elem_classes=["ds-field-error"]) if msg
                                               else gr.update(info=spec.help, elem_classes=[]))
    return out


def fill_updates(ctx: Ctx, m: Manager, config: dict[str, Any]) -> dict[Any, Any]:
    return {m[f"{PAGE}.field_{spec.name}"]: gr.update(value=shown_value(spec, config.get(spec.name, spec.default)),
                                                      info=spec.help, elem_classes=[])
            for spec in ctx.schema.fields}


def fill_form(ctx: Ctx, m: Manager, config: dict[str, Any]) -> dict[Any, Any]:
    """The form filled from ``config`` with no preset (a clone, traces to train on): later edits count from it."""
    p = m.page(PAGE)
    return {p["preset"]: gr.update(value=NO_PRESET), p["preset_state"]: NO_PRESET, p["preset_info"]: "",
            **fill_updates(ctx, m, config)}


def apply_preset(ctx: Ctx, m: Manager, preset: str, presets: dict[str, Any], note: str = "") -> dict[Any, Any]:
    """The form filled from ``preset`` (its description under the picker, or ``note``)."""
    p = m.page(PAGE)
    desc = (presets.get(preset) or {}).get("description", "") if preset else ""
    return {p["preset"]: gr.update(value=preset), p["preset_state"]: preset,
            p["preset_info"]: gr.update(value=note or (f"*{desc}*" if desc else "")),
            **fill_updates(ctx, m, baseline(ctx, preset))}


def replaced_edits(ctx: Ctx, old: str, new: str, values: list[Any]) -> list[str]:
    """Fields changed from preset ``old``'s values that preset ``new`` gives another value."""
    edited = config_diff(form_values(ctx, values), baseline(ctx, old))
    return list(config_diff(edited, baseline(ctx, new)))


def replaced_note(preset: str, fields: list[str]) -> str:
    what = f"Preset {preset}" if preset else "No preset (the plain defaults)"
    names = ", ".join(f"`{f}`" for f in fields)  # code spans: "_" in field names is not emphasis
    return f"**{what} applied**; it replaced your changes to {names}." if fields else ""


def launch(ctx: Ctx, m: Manager, preset: str, values: list[Any]) -> tuple[dict[Any, Any], int | None]:
    """POST /runs; (updates for this page, the new run's id or None)."""
    banner = m[f"{PAGE}.banner"]
    if not ctx.schema.fields:
        return {banner: banner_html(NO_SCHEMA)}, None
    try:
        created = ctx.api.create_run(request_body(ctx, preset, values))
    except ApiCallError as e:
        known = {k: v for k, v in e.field_errors.items() if ctx.schema.get(k) is not None}
        msg = e.message if not known or len(known) < len(e.field_errors) else \
            f"Not launched: fix the field{'s' if len(known) > 1 else ''} marked in red ({', '.join(known)})."
        return {banner: banner_html(msg), **field_updates(ctx, m, known)}, None
    rid = int(created["id"])
    return {banner: banner_html(f"Launched run #{rid}.", "ok"), **field_updates(ctx, m, {})}, rid


def wire(ctx: Ctx, m: Manager) -> None:
    """Events that stay inside the page."""
    p = m.page(PAGE)
    fields = field_list(ctx, m)

    def on_preset(preset: str, applied: str, presets: dict[str, Any], *values: Any) -> Any:
        # The dropdown also sends .input when opened and closed without a new choice: that must keep every edit.
        if (preset or NO_PRESET) == (applied or NO_PRESET):
            return gr.skip()
        note = replaced_note(preset, replaced_edits(ctx, applied, preset, list(values)))
        return apply_preset(ctx, m, preset, presets, note)

    p["preset"].input(on_preset, [p["preset"], p["preset_state"], p["presets_state"], *fields],
                      [p["preset"], p["preset_state"], p["preset_info"], *fields], show_progress="hidden")

    def on_change(preset: str, *values: Any) -> tuple[str, str]:
        try:
            return commands(ctx, preset, list(values))
        except Exception as e:  # noqa: BLE001
            return f"# {error_text(e)}", ""

    gr.on([p["preset"].change, *[f.change for f in fields], p["presets_state"].change], on_change,
          [p["preset"], *fields], [p["cli"], p["curl"]], show_progress="hidden", trigger_mode="always_last", queue=False)
    if "ds_pick" in p:
        wire_datasets(ctx, m)


def wire_datasets(ctx: Ctx, m: Manager) -> None:
    p = m.page(PAGE)
    dataset = p["field_dataset"]

    def on_pick(ds_id: Any, datasets: list[dict[str, Any]]) -> Any:
        item = next((d for d in datasets if str(d.get("id")) == str(ds_id)), None)
        return gr.skip() if item is None else {**show_dataset(ctx, m, item), p["banner"]: ""}

    p["ds_pick"].input(on_pick, [p["ds_pick"], p["datasets_state"]],
                       [dataset, p["ds_preview"], p["ds_report"], p["banner"]])

    def on_upload(file: Any, datasets: list[dict[str, Any]]) -> Any:
        path = file if isinstance(file, str) else getattr(file, "name", None)
        if not path:
            return gr.skip()
        try:
            item = ctx.api.upload_dataset(path, os.path.basename(path))
            items = ctx.api.list_datasets()
        except ApiCallError as e:
            return {p["banner"]: banner_html(e.message)}
        return {p["ds_pick"]: gr.update(choices=dataset_choices(items), value=item["id"]), p["datasets_state"]: items,
                **show_dataset(ctx, m, item),
                p["banner"]: banner_html(f"Uploaded {item.get('name')}: {item.get('rows')} rows", "ok")}

    p["ds_upload"].upload(on_upload, [p["ds_upload"], p["datasets_state"]],
                          [p["ds_pick"], p["datasets_state"], dataset, p["ds_preview"], p["ds_report"], p["banner"]])


def dataset_choices(items: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """``name · upload · 120 rows``; a generated dataset says which run made it and that its rows are kept traces."""
    out = []
    for d in items:
        rows, kind = d.get("rows"), d.get("kind", "")
        if kind == "generated":
            origin = f"generated by run #{d['run_id']}" if d.get("run_id") is not None else "generated"
            size = f" · {rows} traces kept" if rows is not None else ""
        else:
            origin, size = kind, f" · {rows} rows" if rows is not None else ""
        out.append((f"{d.get('name')} · {origin}{size}", d.get("id")))
    return out


def report_html(report: dict[str, Any] | None) -> str:
    """A dataset's report: a generated one's funnel (problems → samples → kept), else its key/value table."""
    if report and report.get("kind") == "traces":
        return f'<div class="ds-col-title">How its traces were kept</div>{funnel_html(report)}'
    return kv_html(report or {}, "Data report")


def show_dataset(ctx: Ctx, m: Manager, item: dict[str, Any]) -> dict[Any, Any]:
    """``dataset`` set to a known dataset's ref, and a few of its rows as they are trained, with its report."""
    p = m.page(PAGE)
    out = {p["field_dataset"]: gr.update(value=item["ref"])}
    try:
        prev = ctx.api.dataset_preview(item["id"], n=3)
    except ApiCallError as e:
        return {**out, p["ds_preview"]: banner_html(e.message), p["ds_report"]: report_html(item.get("report"))}
    return {**out, p["ds_preview"]: preview_html(prev.get("rows") or []),
            p["ds_report"]: report_html(prev.get("report") or item.get("report"))}


def refresh(ctx: Ctx, m: Manager) -> dict[Any, Any]:
    """On page load: presets, known models and datasets from the API (the form stays usable without them)."""
    p = m.page(PAGE)
    errors = []
    presets: dict[str, Any] = {}
    model_choices: list[str] = []
    try:
        models = ctx.api.models()
        presets = models.get("presets") or {}
        for mdl in [models.get("embedded"), *(models.get("builtin") or []), *(models.get("cached") or [])]:
            if mdl and mdl not in model_choices:
                model_choices.append(mdl)
        for pr in presets.values():
            mdl = (pr.get("config") or {}).get("model")
            if mdl and mdl not in model_choices:
                model_choices.append(mdl)
    except ApiCallError as e:
        errors.append(e.message)
    datasets: list[dict[str, Any]] = []
    ds_refs: list[str] = []
    try:
        datasets = ctx.api.list_datasets()
        ds_refs = [d["ref"] for d in datasets if d.get("ref")]
    except ApiCallError as e:
        errors.append(e.message)
    for pr in presets.values():
        ref = (pr.get("config") or {}).get("dataset")
        if ref and ref not in ds_refs:
            ds_refs.append(ref)
    preset_choices = [(NO_PRESET_LABEL, NO_PRESET)] + [
        (f"{name}: {pr.get('description', '')}", name) for name, pr in presets.items()]
    out: dict[Any, Any] = {p["preset"]: gr.update(choices=preset_choices), p["presets_state"]: presets}
    if ctx.schema.fields:
        out[p["banner"]] = banner_html(errors[0]) if errors else ""
    if model_choices and "field_model" in p:
        out[p["field_model"]] = gr.update(choices=model_choices)
    if ds_refs and "field_dataset" in p:
        out[p["field_dataset"]] = gr.update(choices=ds_refs)
    if "ds_pick" in p:
        out[p["ds_pick"]] = gr.update(choices=dataset_choices(datasets))
        out[p["datasets_state"]] = datasets
    return merge(out, opening_preset(ctx, m, presets))


def opening_preset(ctx: Ctx, m: Manager, presets: dict[str, Any]) -> dict[Any, Any]:
    """The form on the demo preset, when the API lists it and resolves it (else the plain defaults, as labelled)."""
    if not ctx.schema.fields or DEFAULT_PRESET not in presets:
        return {}
    baseline(ctx, DEFAULT_PRESET)
    return apply_preset(ctx, m, DEFAULT_PRESET, presets) if DEFAULT_PRESET in ctx.resolved else {}


def outputs(ctx: Ctx, m: Manager) -> list[Any]:
    """Everything ``refresh`` may update."""
    p = m.page(PAGE)
    names = ["preset", "presets_state", "preset_state", "preset_info", "banner", "field_model", "field_dataset",
             "ds_pick", "datasets_state"]
    return list(dict.fromkeys([*(p[n] for n in names if n in p), *field_list(ctx, m)]))
