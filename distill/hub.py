"""Local or Hugging Face Hub: the one place that tells a hub id from a path, and whether the Hub answers.

Used for models, datasets and benchmark suites alike, by the CLI, the service and the core.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

from distill.errors import one_line

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(?::[\w.-]+)?$")  # owner/name, optionally :config
DATA_SUFFIXES = (".jsonl", ".json", ".parquet")
# The reachability probe must be short: an unreachable Hub otherwise costs ~25 s of library retries.
PROBE_TIMEOUT_S = 3.0
_TRUE = {"1", "true", "yes", "on"}


def where(value: str, home: Path | None = None) -> str:
    """'builtin', 'local' or 'hub'. A value is local when it exists (under ``home`` when given, for a
    relative one), looks like a path (``./``, ``/``, ``~``) or names a data file; a hub id otherwise."""
    if value.startswith("builtin:"):
        return "builtin"
    path = Path(value).expanduser()
    exists = path.exists() or (home is not None and not path.is_absolute() and (home / value.split(":")[0]).exists())
    if exists or value.startswith((".", "/", "~")) or path.suffix.lower() in DATA_SUFFIXES or not HUB_ID.match(value):
        return "local"
    return "hub"


def unavailable_reason() -> str | None:
    """Why the Hub cannot be used right now, found quickly; None when it may be reachable."""
    # Read the environment here: the hub libraries read it only once, at import time.
    if any(os.environ.get(var, "").strip().lower() in _TRUE for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        return "offline mode is on (HF_HUB_OFFLINE)"
    if any(os.environ.get(var) for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # a direct probe says nothing about reachability through a proxy
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as err:
        return f"cannot connect to {host}:{port} ({one_line(err)})"
    return None
