"""What every page shares: the API clients, the run-configuration schema, the metric catalog, small helpers."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ui.client import ApiCallError, ApiClient, AsyncApiClient
from ui.shared import Catalog, CatalogCache, run_label

log = logging.getLogger("ui")

GROUP_TITLES = {
    "run": "Run", "model": "Model", "data": "Data", "teacher": "Teacher (trace generation: mode generate, or all)",
    "training": "Training", "lora": "LoRA", "kl": "KL regularization", "evaluation": "Evaluation",
    "engine": "Inference engine",
}
# The teacher right after the data: with a teacher_model, `dataset` holds the problems it is asked.
GROUP_ORDER = ("run", "model", "data", "teacher", "training", "lora", "kl", "evaluation", "engine")
# Fields the form does not show as inputs: the preset has its own picker at the top of the page.
HIDDEN_FIELDS = {"preset"}


@dataclass
class FieldSpec:
    name: str
    group: str
    kind: str  # bool | enum | int | float | str | list (of strings: a comma-separated text field)
    default: Any
    description: str = ""
    choices: list[Any] = field(default_factory=list)
    nullable: bool = False
    bounds: str = ""

    @property
    def help(self) -> str:
        text = self.description
        if self.bounds:
            text += f" ({self.bounds})"
        return text


@dataclass
class FormSchema:
    fields: list[FieldSpec]
    source: str  # "api", or "none" when the API did not answer (the form is then empty)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def defaults(self) -> dict[str, Any]:
        return {f.name: f.default for f in self.fields}

    def by_group(self) -> dict[str, list[FieldSpec]]:
        groups: dict[str, list[FieldSpec]] = {g: [] for g in GROUP_ORDER}
        for f in self.fields:
            groups.setdefault(f.group, []).append(f)
        return {g: fs for g, fs in groups.items() if fs}

    def get(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)


def _bounds(p: dict[str, Any]) -> str:
    parts = []
    if "exclusiveMinimum" in p:
        parts.append(f"> {p['exclusiveMinimum']}")
    elif "minimum" in p:
        parts.append(f"≥ {p['minimum']}")
    if "exclusiveMaximum" in p:
        parts.append(f"< {p['exclusiveMaximum']}")
    elif "maximum" in p:
        parts.append(f"≤ {p['maximum']}")
    return ", ".join(parts)


def parse_schema(schema: dict[str, Any], source: str = "api") -> FormSchema:
    """Form fields from a RunConfig JSON schema (each property has group, description, default)."""
    fields = []
    for name, prop in (schema.get("properties") or {}).items():
        if name in HIDDEN_FIELDS:
            continue
        variants = prop.get("anyOf") or [prop]
        nullable = any(v.get("type") == "null" for v in variants)
        main = next((v for v in variants if v.get("type") != "null"), {})
        merged = {**main, **{k: v for k, v in prop.items() if k != "anyOf"}}
        enum = merged.get("enum") or ([main["const"]] if "const" in main else None)
        typ = main.get("type", "string")
        kind = "enum" if enum else {"boolean": "bool", "integer": "int", "number": "float", "array": "list"}.get(typ, "str")
        fields.append(FieldSpec(
            name=name, group=str(prop.get("group", "other")), kind=kind, default=prop.get("default"),
            description=str(prop.get("description", "")), choices=list(enum or []), nullable=nullable,
            bounds=_bounds(main),
        ))
    return FormSchema(fields, source)


@dataclass
class Ctx:
    api_url: str
    token: str | None
    # Base URL the *browser* can use for direct links to the API ("" = same origin); None = no direct links.
    link_base: str | None
    # Base URL shown in the copyable curl command.
    public_api_url: str
    api: ApiClient
    aapi: AsyncApiClient
    schema: FormSchema
    catalog_cache: CatalogCache | None = None
    # POST /config/resolve of each preset alone (the launch form's baseline); presets do not change while
    # the server runs.
    resolved: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def catalog(self) -> Catalog:
        """How metrics are labelled and formatted (``GET /metric-definitions``, fetched once)."""
        if self.catalog_cache is None:
            self.catalog_cache = CatalogCache(self.api.metric_definitions)
        return self.catalog_cache.get()

    def artifact_link_base(self, run_id: int) -> str | None:
        if self.link_base is None or self.token:
            return None
        return f"{self.link_base.rstrip('/')}/api/v1/runs/{int(run_id)}/artifacts"


def run_choices(api: ApiClient, status: str | None = None, limit: int = 100,
                with_status: bool = False, trained_only: bool = False) -> list[tuple[str, int]]:
    """(label, id) per run; ``trained_only`` leaves out benchmark jobs (they measure a run's models, have none) and
    trace generations (mode generate: they write a dataset, train no model)."""
    page = api.list_runs(status=status, limit=limit)
    return [(run_label(r, with_status), int(r["id"])) for r in page.get("items", [])
            if not (trained_only and (r.get("parent_id") is not None
                                      or (r.get("config") or {}).get("mode") == "generate"))]


def error_text(exc: Exception) -> str:
    if isinstance(exc, ApiCallError):
        return exc.message
    log.exception("dashboard error")
    return f"{type(exc).__name__}: {exc}"


def to_int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


# Clickable things inside a gr.HTML: an element with data-open="…" (and data-run/suite/job) sends
# one click event with those values; plain links stay links for a new tab (ctrl/cmd/middle click).
CLICK_JS = """
element.addEventListener('click', (e) => {
  const a = e.target.closest('[data-open]');
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey || e.button !== 0) return;
  e.preventDefault();
  trigger('click', {open: a.dataset.open, run: a.dataset.run || '', suite: a.dataset.suite || '', job: a.dataset.job || ''});
});
"""


def click_data(evt: Any) -> dict[str, str]:
    """The values a CLICK_JS element sent ({} for a click elsewhere)."""
    data = getattr(evt, "_data", None)
    return {k: str(v) for k, v in data.items()} if isinstance(data, dict) and data.get("open") else {}


def y_format(series: str) -> str:
    """d3 formats: ``~e`` keeps a learning rate short (``2e-4``, not a clipped ``2.0e-4``); ``.6~g`` prints
    ``350`` and a single value as ``50.08``, not ``3.5e+2`` or ``50.080000`` (an explicit precision: without
    one the chart derives it from the tick step)."""
    return "~e" if series == "lr" else ".6~g"
