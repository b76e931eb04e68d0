"""Paths that come from clients stay inside DISTILL_HOME: no ``..``, no absolute path elsewhere,
no symlink leading out."""

from __future__ import annotations

from pathlib import Path

from backend.errors import FieldError


def inside_home(home: Path, raw: str, field: str) -> Path:
    """The absolute path ``raw`` names under ``home`` (relative paths are relative to it), or FieldError."""
    text = (raw or "").strip()
    if not text:
        raise FieldError(field, "must not be empty")
    if "\x00" in text:
        raise FieldError(field, "must not contain NUL characters")
    if text.startswith("~"):
        raise FieldError(field, f"must be a path inside DISTILL_HOME ({home}); '~' is not expanded")
    p = Path(text)
    if ".." in p.parts:
        raise FieldError(field, "must not contain '..' (paths stay inside DISTILL_HOME)")
    home = home.resolve()
    full = (p if p.is_absolute() else home / p).resolve(strict=False)
    if not full.is_relative_to(home):
        raise FieldError(field, f"must stay inside DISTILL_HOME ({home}); got {text!r}")
    return full


def is_plain_name(name: str) -> bool:
    """A single path component that is not '.' or '..' (artifact names)."""
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..") and "\x00" not in name
