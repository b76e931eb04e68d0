"""Launch: every run-configuration field, grouped, with defaults and help; presets; dataset picker; Launch."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ui.client import ApiError
from ui.format import banner_html, cli_command, config_diff, curl_command, kv_html, preview_html
from ui.pages.common import GROUP_TITLES, Ctx, FieldSpec, error_text

NO_PRESET = ""
WIDE_FIELDS = {"model", "dataset", "output_dir", "sft_model_path", "lora_target_modules", "name"}


@dataclass
class LaunchPage:
    fields: dict[str, gr.components.Component]
    preset: gr.Dropdown
    preset_info: gr.Markdown
    banner: gr.HTML
    launch_btn: gr.Button
    cli: gr.Code
    curl: gr.Code
    ds_pick: gr.Dropdown
    ds_upload: gr.UploadButton
    ds_preview: gr.HTML
    ds_report: gr.HTML
    presets_state: gr.State
    datasets_state: gr.State


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
    if spec.kind in ("int", "float") and not spec.nullable:
        return gr.Number(value=spec.default, precision=0 if spec.kind == "int" else None, **common)
    if spec.kind in ("int", "float"):  # optional number: a text box, so "empty = default" is possible
        return gr.Textbox(value="" if spec.default is None else str(spec.default), placeholder="(empty: default)",
                          **common)
    return gr.Textbox(value=spec.default or "", placeholder="(empty: default)" if spec.nullable else None, **common)


def coerce(spec: FieldSpec | None, value: Any) -> Any:
    """A form value as the API wants it (empty optional → None, whole floats of int fields → int)."""
    if spec is None:
        return value
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


def build(ctx: Ctx) -> LaunchPage:
    schema = ctx.schema
    gr.Markdown(
        "Pick a **preset** (or keep the defaults: the embedded CPU demo), adjust any field, then **Launch**. "
        "The run opens on its own page, where logs and curves stream live.",
        elem_classes=["ds-muted"],
    )
    with gr.Row(equal_height=False):
        preset = gr.Dropdown(label="Preset", choices=[("Defaults: embedded CPU demo", NO_PRESET)], value=NO_PRESET,
                             scale=3, elem_id="preset-pick", info="Fills the form; you can still change any field.")
        launch_btn = gr.Button("▶ Launch run", variant="primary", scale=1, elem_id="launch-btn", min_width=160)
    preset_info = gr.Markdown("")
    banner = gr.HTML("", elem_id="launch-banner", elem_classes=["ds-collapse"])
    fields: dict[str, gr.components.Component] = {}
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=320):
            for group, specs in schema.by_group().items():
                with gr.Group(elem_id=f"group-{group}"):
                    gr.Markdown(f"### {GROUP_TITLES.get(group, group.title())}", padding=True)
                    with gr.Row(equal_height=False):
                        for spec in specs:
                            fields[spec.name] = _component(spec)
                    if group == "data":
                        with gr.Row(equal_height=False):
                            ds_pick = gr.Dropdown(label="Dataset picker", choices=[], value=None, scale=3,
                                                  info="Known datasets; picking one fills `dataset` and shows a preview",
                                                  elem_id="dataset-pick")
                            ds_upload = gr.UploadButton("⬆ Upload .jsonl/.json/.parquet", file_types=[".jsonl", ".json", ".parquet"],
                                                        scale=1, min_width=160, size="md")
        with gr.Column(scale=2, min_width=320):
            gr.Markdown("#### Same run from a terminal")
            cli = gr.Code(label="CLI (runs in this shell, no server)", language="shell", interactive=False,
                          value="distill", elem_classes=["ds-code"], elem_id="cli-cmd", lines=2)
            curl = gr.Code(label="REST API (curl)", language="shell", interactive=False, elem_classes=["ds-code"],
                           elem_id="curl-cmd", lines=4)
            gr.Markdown("#### Training data preview")
            ds_preview = gr.HTML('<div class="ds-muted">Pick a dataset above to see a few rows as they are trained '
                                 "(converted to the <code>&lt;think&gt;</code> format).</div>", elem_id="dataset-preview",
                                 max_height=520)
            ds_report = gr.HTML("", elem_id="dataset-report")
    return LaunchPage(fields=fields, preset=preset, preset_info=preset_info, banner=banner, launch_btn=launch_btn,
                      cli=cli, curl=curl, ds_pick=ds_pick, ds_upload=ds_upload, ds_preview=ds_preview,
                      ds_report=ds_report, presets_state=gr.State({}), datasets_state=gr.State([]))


# --------------------------------------------------------------------------- logic (pure where possible)

def form_values(ctx: Ctx, values: list[Any]) -> dict[str, Any]:
    return {name: coerce(ctx.schema.get(name), v) for name, v in zip(ctx.schema.names, values, strict=True)}


def baseline(ctx: Ctx, preset: str | None, presets: dict[str, Any]) -> dict[str, Any]:
    base = dict(ctx.schema.defaults)
    if preset and preset in presets:
        base.update((presets[preset] or {}).get("config") or {})
    return base


def request_body(ctx: Ctx, preset: str | None, presets: dict[str, Any], values: list[Any]) -> dict[str, Any]:
    """The POST /runs body: the preset plus every field that differs from what the preset/defaults give."""
    current = form_values(ctx, values)
    body: dict[str, Any] = {"preset": preset} if preset else {}
    body.update(config_diff(current, baseline(ctx, preset, presets)))
    return body


def commands(ctx: Ctx, preset: str | None, presets: dict[str, Any], values: list[Any]) -> tuple[str, str]:
    body = request_body(ctx, preset, presets, values)
    return cli_command(body), curl_command(ctx.public_api_url, body, bool(ctx.token))


def field_updates(ctx: Ctx, errors: dict[str, str]) -> list[Any]:
    """Each field's help text, or its validation error (red) when the API refused it."""
    out = []
    for spec in ctx.schema.fields:
        msg = errors.get(spec.name)
        if msg:
            out.append(gr.update(info=f"⚠ {msg}", elem_classes=["ds-field-error"]))
        else:
            out.append(gr.update(info=spec.help, elem_classes=[]))
    return out


def fill_updates(ctx: Ctx, config: dict[str, Any]) -> list[Any]:
    out = []
    for spec in ctx.schema.fields:
        v = config.get(spec.name, spec.default)
        if v is None and (spec.kind == "str" or spec.nullable):
            v = ""
        elif spec.nullable and spec.kind in ("int", "float"):
            v = str(v)
        out.append(gr.update(value=v, info=spec.help, elem_classes=[]))
    return out


def wire(ctx: Ctx, page: LaunchPage) -> None:
    """Events that stay inside the page."""
    field_list = list(page.fields.values())

    def on_preset(preset: str, presets: dict[str, Any]):  # noqa: ANN202
        cfg = baseline(ctx, preset, presets)
        desc = (presets.get(preset) or {}).get("description", "") if preset else ""
        return [gr.update(value=f"*{desc}*" if desc else ""), *fill_updates(ctx, cfg)]

    page.preset.input(on_preset, [page.preset, page.presets_state], [page.preset_info, *field_list],
                      show_progress="hidden")

    def on_change(preset: str, presets: dict[str, Any], *values: Any):  # noqa: ANN202
        try:
            return commands(ctx, preset, presets, list(values))
        except Exception as e:  # noqa: BLE001
            return f"# {error_text(e)}", ""

    gr.on([page.preset.change, *[f.change for f in field_list], page.presets_state.change], on_change,
          [page.preset, page.presets_state, *field_list], [page.cli, page.curl],
          show_progress="hidden", trigger_mode="always_last", queue=False)

    def on_pick(ds_id: Any, datasets: list[dict[str, Any]]):  # noqa: ANN202
        item = next((d for d in datasets if str(d.get("id")) == str(ds_id)), None)
        if item is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            prev = ctx.api.dataset_preview(item["id"], n=3)
        except ApiError as e:
            return gr.update(value=item["ref"]), banner_html(e.message), "", gr.skip()
        report = kv_html(prev.get("report") or {}, "Data report")
        return gr.update(value=item["ref"]), preview_html(prev.get("rows") or []), report, ""

    page.ds_pick.input(on_pick, [page.ds_pick, page.datasets_state],
                       [page.fields["dataset"], page.ds_preview, page.ds_report, page.banner])

    def on_upload(file: Any, datasets: list[dict[str, Any]]):  # noqa: ANN202
        path = file if isinstance(file, str) else getattr(file, "name", None)
        if not path:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            item = ctx.api.upload_dataset(path, os.path.basename(path))
            items = ctx.api.list_datasets()
        except ApiError as e:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), banner_html(e.message)
        preview, report = "", kv_html(item.get("report") or {}, "Data report")
        try:
            prev = ctx.api.dataset_preview(item["id"], n=3)
            preview = preview_html(prev.get("rows") or [])
            report = kv_html(prev.get("report") or item.get("report") or {}, "Data report")
        except ApiError as e:
            preview = banner_html(e.message)
        choices = dataset_choices(items)
        return (gr.update(choices=choices, value=item["id"]), items, gr.update(value=item["ref"]), preview, report,
                banner_html(f"Uploaded {item.get('name')}: {item.get('rows')} rows", "ok"))

    page.ds_upload.upload(on_upload, [page.ds_upload, page.datasets_state],
                          [page.ds_pick, page.datasets_state, page.fields["dataset"], page.ds_preview, page.ds_report,
                           page.banner])


def dataset_choices(items: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    out = []
    for d in items:
        rows = d.get("rows")
        out.append((f"{d.get('name')} · {d.get('kind', '')}{f' · {rows} rows' if rows is not None else ''}", d.get("id")))
    return out


def refresh(ctx: Ctx, current_preset: str | None = None):  # noqa: ANN201
    """On page load: presets, known models and datasets from the API (the form stays usable without them)."""
    errors = []
    presets: dict[str, Any] = {}
    model_choices: list[str] = []
    try:
        models = ctx.api.models()
        presets = models.get("presets") or {}
        for m in [models.get("embedded"), *(models.get("builtin") or []), *(models.get("cached") or [])]:
            if m and m not in model_choices:
                model_choices.append(m)
        for p in presets.values():
            m = (p.get("config") or {}).get("model")
            if m and m not in model_choices:
                model_choices.append(m)
    except ApiError as e:
        errors.append(e.message)
    datasets: list[dict[str, Any]] = []
    ds_refs: list[str] = []
    try:
        datasets = ctx.api.list_datasets()
        ds_refs = [d["ref"] for d in datasets if d.get("ref")]
    except ApiError as e:
        errors.append(e.message)
    for p in presets.values():
        ref = (p.get("config") or {}).get("dataset")
        if ref and ref not in ds_refs:
            ds_refs.append(ref)
    preset_choices = [("Defaults: embedded CPU demo", NO_PRESET)] + [
        (f"{name}: {p.get('description', '')}", name) for name, p in presets.items()]
    return (
        gr.update(choices=preset_choices),
        presets,
        gr.update(choices=model_choices) if model_choices else gr.skip(),
        gr.update(choices=ds_refs) if ds_refs else gr.skip(),
        gr.update(choices=dataset_choices(datasets)),
        datasets,
        banner_html(errors[0]) if errors else "",
    )
