"""Server-Sent Events framing."""

from __future__ import annotations

import json
from typing import Any


def sse(event: str, data: Any, id: int | str | None = None) -> str:
    head = f"event: {event}\n" + (f"id: {id}\n" if id is not None else "")
    return head + f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
