"""Read raw rows from a data source and turn them into examples.

A source is `builtin:reasoning`, a local .jsonl/.json/.parquet file or a folder of them,
or a Hugging Face Hub dataset id (`owner/name` or `owner/name:config`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from distill.data import builtin
from distill.data.formats import EXPECTED_FORMATS, normalize_row
from distill.data.schema import (
    BadRow,
    DataFormatError,
    DataSourceError,
    ReasoningExample,
)
from distill.errors import one_line
from distill.hub import DATA_SUFFIXES, unavailable_reason, where

BUILTIN_SOURCE = "builtin:reasoning"
# Rows `iter_rows` yields from the built-in generator when the caller sets no limit.
DEFAULT_BUILTIN_ROWS = 1000
SUPPORTED_SUFFIXES = DATA_SUFFIXES
# If this many leading rows match no format, the file is the wrong kind of file, not a few bad rows.
FIRST_ROWS_CHECKED = 20


@dataclass
class DataStats:
    rows_read: int = 0
    rows_kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    domains: dict[str, int] = field(default_factory=dict)


def iter_rows(source: str, max_rows: int | None = None, split: str = "train") -> Iterator[dict]:
    """Raw rows (dicts) of a source; the source is opened, and checked to exist, right away."""
    return (row for _, row in iter_located_rows(source, max_rows, split))


def iter_located_rows(
    source: str, max_rows: int | None = None, split: str = "train"
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Like `iter_rows`, with each row's location ("file.jsonl:12", "file.parquet row 3")."""
    rows: Iterator[tuple[str, dict[str, Any]]]
    path = Path(source).expanduser()
    if source.startswith("builtin:"):
        if source != BUILTIN_SOURCE:
            raise DataSourceError(f"unknown built-in dataset {source!r}; the built-in dataset is {BUILTIN_SOURCE}")
        count = DEFAULT_BUILTIN_ROWS if max_rows is None else max_rows
        rows = ((f"{source} row {i}", row) for i, row in enumerate(builtin.generate_rows(count, split=split), 1))
    elif path.exists():
        rows = _file_rows(_local_files(path), split)
    elif where(source) == "local":
        raise FileNotFoundError(
            f"data source {source!r} not found: no such file or folder "
            f"(expected {BUILTIN_SOURCE}, a local .jsonl/.json/.parquet file or folder, "
            "or a Hub dataset id owner/name[:config])"
        )
    else:
        rows = _hub_rows(source, split)
    return islice(rows, max_rows)


def load_examples(
    source: str, max_samples: int | None, split: str = "train"
) -> tuple[list[ReasoningExample], DataStats]:
    """Normalized examples (up to `max_samples` kept) and counts of what was read and skipped."""
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be at least 1, got {max_samples}")
    stats = DataStats()
    examples: list[ReasoningExample] = []
    first_problem: tuple[str, BadRow] | None = None
    leading_unknown = True
    # Built-in rows never fail, so asking for exactly max_samples of them is enough.
    max_rows = max_samples if source.startswith("builtin:") else None
    for location, row in iter_located_rows(source, max_rows, split):
        stats.rows_read += 1
        try:
            example = normalize_row(row)
        except BadRow as bad:
            stats.skipped[bad.reason] = stats.skipped.get(bad.reason, 0) + 1
            first_problem = first_problem or (location, bad)
            leading_unknown = leading_unknown and bad.reason == "unknown_format"
            if leading_unknown and stats.rows_read == FIRST_ROWS_CHECKED:
                raise _unknown_format_error(first_problem) from None
            continue
        leading_unknown = False
        examples.append(example)
        domain = example.domain or "unknown"
        stats.domains[domain] = stats.domains.get(domain, 0) + 1
        if max_samples is not None and len(examples) >= max_samples:
            break
    stats.rows_kept = len(examples)
    if first_problem is not None and leading_unknown:
        raise _unknown_format_error(first_problem)
    if not examples:
        if first_problem is None:
            raise DataFormatError(f"{source}: no rows found")
        skipped = ", ".join(f"{reason}={count}" for reason, count in sorted(stats.skipped.items()))
        location, problem = first_problem
        raise DataFormatError(
            f"{source}: no usable rows among {stats.rows_read} read (skipped: {skipped}); "
            f"first problem at {location}: {problem}"
        )
    return examples, stats


def _unknown_format_error(first_problem: tuple[str, BadRow]) -> DataFormatError:
    location, bad = first_problem
    return DataFormatError(
        f"{location}: rows match no supported format ({bad.detail}); expected one of: {EXPECTED_FORMATS}"
    )


def _local_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and p.suffix.lower() in SUPPORTED_SUFFIXES
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        if not files:
            raise DataFormatError(f"{path}: folder holds no .jsonl, .json or .parquet files")
        return files
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise DataFormatError(
            f"{path}: unsupported file type {path.suffix or '(no extension)'}; expected .jsonl, .json or .parquet"
        )
    return [path]


def _file_rows(files: list[Path], split: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in files:
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            yield from _jsonl_rows(path)
        elif suffix == ".json":
            yield from _json_rows(path, split)
        else:
            yield from _parquet_rows(path)


def _jsonl_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    lineno = 0
    try:
        with path.open(encoding="utf-8-sig") as lines:
            for lineno, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataFormatError(
                        f"{path}:{lineno}: expected one JSON object per line ({err.msg} at column {err.colno})"
                    ) from None
                if not isinstance(row, dict):
                    raise DataFormatError(
                        f"{path}:{lineno}: expected one JSON object per line (got a JSON {type(row).__name__})"
                    )
                yield f"{path}:{lineno}", row
    except UnicodeDecodeError:
        raise DataFormatError(f"{path}:{lineno + 1}: expected UTF-8 text with one JSON object per line") from None


def _json_rows(path: Path, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
    expected = "expected a JSON list of objects, or an object holding a 'data', 'train' or 'rows' list"
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}:{err.lineno}: {expected} ({err.msg})") from None
    except UnicodeDecodeError:
        raise DataFormatError(f"{path}: {expected} (the file is not UTF-8 text)") from None
    if isinstance(data, dict):
        key = next((k for k in (split, "data", "rows") if isinstance(data.get(k), list)), None)
        if key is None:
            raise DataFormatError(f"{path}:1: {expected} (found keys {sorted(data)[:8]})")
        data = data[key]
    if not isinstance(data, list):
        raise DataFormatError(f"{path}:1: {expected} (found a JSON {type(data).__name__})")
    for index, item in enumerate(data, 1):
        if not isinstance(item, dict):
            raise DataFormatError(f"{path} row {index}: {expected} (row is a JSON {type(item).__name__})")
        yield f"{path} row {index}", item


def _parquet_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several unrelated types for a damaged file
        raise DataFormatError(f"{path}: not a readable Parquet file ({one_line(err)})") from None
    index = 0
    for batch in parquet.iter_batches(batch_size=256):
        for row in batch.to_pylist():
            index += 1
            yield f"{path} row {index}", row


def _hub_rows(source: str, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
    name, _, config = source.partition(":")
    unavailable = unavailable_reason()
    if unavailable:
        raise _hub_error(source, unavailable)
    try:
        from datasets import load_dataset

        rows = iter(load_dataset(name, config or None, split=split, streaming=True))
    except Exception as err:  # the datasets library raises many types; the user needs one clear line
        raise _hub_error(source, one_line(err)) from err
    return _hub_iter(source, rows)


def _hub_iter(source: str, rows: Iterator[Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    index = 0
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except Exception as err:  # streaming fetches data lazily, so failures can surface here too
            raise _hub_error(source, one_line(err)) from err
        index += 1
        yield f"{source} row {index}", dict(row)


def _hub_error(source: str, detail: str) -> DataSourceError:
    return DataSourceError(
        f"dataset {source!r} could not be loaded from the Hugging Face Hub (offline or not found): {detail}; "
        f"no local file or folder has that name either; use {BUILTIN_SOURCE} or a local .jsonl/.json/.parquet file"
    )


