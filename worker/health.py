"""Container healthcheck of a worker: ``python -m worker.health [name]`` exits 0 when the worker
(default ``distill@<hostname>``) reported itself to the database in the last 60 s (``backend.tables.WORKER_SEEN_S``)."""

from __future__ import annotations

import socket
import sys


def main(argv: list[str] | None = None) -> int:
    from backend.config import Settings
    from backend.store import Store
    from backend.tables import WORKER_SEEN_S, Worker, worker_seen_since

    argv = list(sys.argv[1:] if argv is None else argv)
    name = argv[0] if argv else f"distill@{socket.gethostname()}"
    store = Store(Settings.from_env(), role="worker")
    with store.sessions() as s:
        w = s.get(Worker, name)
        ok = w is not None and w.state == "online" and w.last_seen >= worker_seen_since()
    print(f"{name}: {'ok' if ok else f'not seen in the last {WORKER_SEEN_S} s'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
