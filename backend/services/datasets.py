"""Built-in and uploaded datasets: upload (validated, size-limited), list, preview in the
``<think>`` format with the data report."""

from __future__ import annotations

import functools
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.errors import FieldError, NotFound, TooLarge
from backend.services import traces
from backend.tables import Dataset, utcnow

BUILTIN = {"builtin:reasoning": "reasoning (built-in arithmetic word problems)"}
SUFFIXES = (".jsonl", ".json", ".parquet")
REPORT_ROWS = 5000  # token lengths are measured on at most this many rows
_CHUNK = 1 << 20


# A dataset is uploaded before (and apart from) any run, so there is no run's model to count with: its report
# counts with the embedded model's tokenizer and says so (``report["tokenizer"]``); a run's own data_report.json
# counts with the run's model (distill/pipeline.py). Loaded once per process, on first use.
@functools.lru_cache(maxsize=1)
def _tokenizer_for_reports() -> Any | None:
    """The embedded model's tokenizer (shared by tiny-random), when it is available locally."""
    try:
        from distill.config import EMBEDDED_MODEL
        from distill.data.prepare import ensure_chat_template
        from distill.models import ensure_local_model, load_tokenizer

        tokenizer = load_tokenizer(ensure_local_model(EMBEDDED_MODEL))
        ensure_chat_template(tokenizer)
        return tokenizer
    except Exception:  # noqa: BLE001 - reports then go without token lengths
        return None


def build_report(source: str, max_rows: int | None, max_seq_length: int = 1024) -> tuple[dict[str, Any], int]:
    """(data report, rows kept). Raises the core's DataFormatError / FileNotFoundError."""
    from distill.data.builtin import default_system
    from distill.data.prepare import chat_token_lengths, data_report, to_prompt_completion
    from distill.data.sources import load_examples

    examples, stats = load_examples(source, max_rows)
    tok = _tokenizer_for_reports()
    system = default_system(source)
    rows = [to_prompt_completion(ex, system) for ex in examples[:REPORT_ROWS]] if tok is not None else []
    lengths = chat_token_lengths(tok, rows) if rows else []
    report = data_report(stats, lengths, max_seq_length)
    report["token_length_rows"] = len(lengths)
    report["tokenizer"] = "smollm2-135m" if tok is not None else None
    return report, len(examples)


@functools.lru_cache(maxsize=len(BUILTIN))
def _builtin_report(dataset_id: str) -> dict[str, Any]:
    """A built-in dataset's report (the generator is deterministic: computed once per process)."""
    return build_report(dataset_id, None)[0]


def _report_of(path: Path, staging: Path) -> tuple[dict[str, Any], int]:
    """(report, rows) of an uploaded file: training rows (reasoning traces), problems with answers (a benchmark,
    or a teacher's problems), or both (``report["uses"]``); a FieldError when it is neither."""
    from distill.traces.problems import read_problems

    def why(e: Exception) -> str:
        return str(e).replace(str(staging) + "/", "").removeprefix("--dataset: ")

    report: dict[str, Any] = {}
    rows, uses, errors = 0, [], []
    try:
        report, rows = build_report(str(path), None)
        uses.append("training")
    except (ValueError, FileNotFoundError) as e:  # DataFormatError is a ValueError
        errors.append(why(e))
    try:
        problems = read_problems(str(path))
        uses.append("problems")
        report["problems"] = len(problems.problems)
        rows = rows or len(problems.problems)
    except (ValueError, FileNotFoundError) as e:  # ProblemError is a ValueError
        errors.append(why(e))
    if not uses:
        raise FieldError("file", f"neither training rows nor problems with answers: {errors[0]}; {errors[1]}")
    report["uses"] = uses
    return report, rows


def _safe_name(filename: str) -> str:
    base = Path(filename.replace("\\", "/")).name
    stem, suffix = Path(base).stem, Path(base).suffix.lower()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "data"
    return stem[:100] + suffix


class DatasetService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session]):
        self.settings, self.sessions = settings, sessions

    def list(self) -> list[dict[str, Any]]:
        from distill.data.sources import DEFAULT_BUILTIN_ROWS

        items = [{"id": ref, "name": name, "kind": "builtin", "ref": ref, "rows": DEFAULT_BUILTIN_ROWS,
                  "uses": ["training", "problems"]} for ref, name in BUILTIN.items()]
        with self.sessions() as s:
            items += traces.generated(s)
            for ds in s.scalars(select(Dataset).order_by(Dataset.id.desc())):
                items.append(self._out(ds))
        return items

    def _out(self, ds: Dataset, with_report: bool = False) -> dict[str, Any]:
        # ref: the file itself, which the API takes (inside DISTILL_HOME) and the CLI reads as it is printed.
        report = ds.report or {}
        out = {"id": f"upload:{ds.id}", "name": ds.name, "kind": "upload", "ref": str(self.settings.home / ds.path),
               "rows": ds.rows, "uses": report.get("uses") or ["training"]}
        if with_report:
            out["report"] = ds.report
        return out

    def upload(self, filename: str, stream: BinaryIO, declared_size: int | None = None) -> dict[str, Any]:
        limit = self.settings.max_upload_bytes
        if declared_size is not None and declared_size > limit:
            raise TooLarge(f"upload is {declared_size} bytes; the limit is {self.settings.max_upload_mb:g} MB "
                           "(DISTILL_MAX_UPLOAD_MB)")
        name = _safe_name(filename or "")
        if Path(name).suffix not in SUFFIXES:
            raise FieldError("file", f"unsupported file type {Path(filename or '').suffix or '(none)'}; "
                             "expected .jsonl, .json or .parquet", type_="value_error")
        staging = self.settings.datasets_dir / ".staging"
        staging.mkdir(parents=True, exist_ok=True)
        tmp_dir = staging / uuid.uuid4().hex
        tmp_dir.mkdir()
        tmp = tmp_dir / name
        try:
            size = 0
            with tmp.open("wb") as out:
                while chunk := stream.read(_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(f"upload exceeds the limit of {self.settings.max_upload_mb:g} MB "
                                       "(DISTILL_MAX_UPLOAD_MB)")
                    out.write(chunk)
            if size == 0:
                raise FieldError("file", "the file is empty")
            report, rows = _report_of(tmp, tmp_dir)
            with self.sessions() as s:
                ds = Dataset(name=name, path="", rows=rows, size=size, report=report, created_at=utcnow())
                s.add(ds)
                s.flush()
                final_dir = self.settings.datasets_dir / str(ds.id)
                final_dir.mkdir(parents=True, exist_ok=True)
                shutil.move(str(tmp), final_dir / name)
                ds.path = str((final_dir / name).relative_to(self.settings.home))
                s.commit()
                return self._out(ds, with_report=True)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)

    def preview(self, dataset_id: str, n: int) -> dict[str, Any]:
        from distill.data.builtin import default_system
        from distill.data.prepare import to_prompt_completion
        from distill.data.sources import load_examples

        if dataset_id in BUILTIN:
            source, report = dataset_id, _builtin_report(dataset_id)
        elif dataset_id.startswith(traces.PREFIX):
            with self.sessions() as s:
                source, report = traces.dataset_file(s, dataset_id)
        else:
            raw = dataset_id.removeprefix("upload:")
            with self.sessions() as s:
                ds = s.get(Dataset, int(raw)) if raw.isdigit() else None
                if ds is None:
                    raise NotFound(f"dataset {dataset_id} not found")
                source, report = str(self.settings.home / ds.path), ds.report
        if "training" not in ((report or {}).get("uses") or ["training"]):
            return {"rows": _problem_rows(source, n), "report": report}
        examples, _ = load_examples(source, n)
        system = default_system(source)
        rows = []
        for ex in examples:
            row = to_prompt_completion(ex, system)
            sys_msg = next((m["content"] for m in row["prompt"] if m["role"] == "system"), None)
            rows.append({"system": sys_msg, "prompt": row["prompt"][-1]["content"],
                         "completion": row["completion"][0]["content"]})
        return {"rows": rows, "report": report}


def _problem_rows(source: str, n: int) -> list[dict[str, Any]]:
    """A file of problems shown as the preview's rows: the problem, and its answer where a completion would be."""
    from distill.traces.problems import read_problems

    return [{"system": None, "prompt": p.prompt, "completion": f"(answer) {p.answer}"}
            for p in read_problems(source, n).problems]
