"""A run folder's files: listed by name; a folder (final_model, merged_model, checkpoints) is served as a zip."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from backend.errors import ApiError, NotFound


def is_plain_name(name: str) -> bool:
    """A single path component that is not '.' or '..' (artifact names)."""
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..") and "\x00" not in name


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += (Path(root) / f).stat().st_size
            except OSError:
                pass
    return total


def list_artifacts(output_dir: str | None) -> list[dict[str, Any]]:
    if not output_dir or not Path(output_dir).is_dir():
        return []
    items = []
    for p in sorted(Path(output_dir).iterdir()):
        if p.name.startswith(".") or p.is_symlink():
            continue
        items.append({"name": p.name, "size": _size(p), "kind": "folder" if p.is_dir() else "file"})
    return items


def artifact_path(output_dir: str | None, name: str) -> Path:
    if not is_plain_name(name) or name.startswith("."):
        raise ApiError("artifact name must be one of the names GET /artifacts lists (no '/', no '..')", 400)
    if not output_dir:
        raise NotFound(f"no artifact {name!r}")
    base = Path(output_dir).resolve()
    path = (base / name)
    if path.is_symlink() or not path.exists() or path.resolve().parent != base:
        raise NotFound(f"no artifact {name!r}")
    return path


def zip_folder(folder: Path) -> Path:
    """The folder as a zip in a temporary file (stored, not compressed: weights do not compress)."""
    fd, tmp = tempfile.mkstemp(prefix=f"{folder.name}-", suffix=".zip")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for root, dirs, files in os.walk(folder):
                dirs.sort()
                for f in sorted(files):
                    p = Path(root) / f
                    if p.is_symlink():
                        continue
                    zf.write(p, arcname=str(Path(folder.name) / p.relative_to(folder)))
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp)
