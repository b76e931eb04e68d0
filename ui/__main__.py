"""``python -m ui``: the dashboard on its own, against a (remote) API.

    DISTILL_API_URL=http://gpu-box:8000 DISTILL_API_TOKEN=... python -m ui --port 7860
"""

from __future__ import annotations

import argparse
import os
import sys

from ui.mount import AUTH_MESSAGE, token_auth


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ui", description="Distill Studio dashboard against a running API")
    p.add_argument("--api-url", default=os.environ.get("DISTILL_API_URL", "http://127.0.0.1:8000"),
                   help="the API's base URL as this process reaches it [env DISTILL_API_URL]")
    p.add_argument("--public-api-url", default=os.environ.get("DISTILL_PUBLIC_URL"),
                   help="the API's URL as browsers reach it (curl examples, direct download links) [env DISTILL_PUBLIC_URL]")
    p.add_argument("--host", default=os.environ.get("DISTILL_UI_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("DISTILL_UI_PORT", "7860")))
    args = p.parse_args(argv)
    token = os.environ.get("DISTILL_API_TOKEN") or None

    from ui.app import build_dashboard, launch_kwargs

    demo = build_dashboard(args.api_url, token, public_api_url=args.public_api_url or args.api_url,
                           link_base=None if token else (args.public_api_url or args.api_url))
    print(f"Dashboard: http://{args.host}:{args.port}/  (API: {args.api_url})", flush=True)
    demo.launch(server_name=args.host, server_port=args.port, auth=token_auth(token) if token else None,
                auth_message=AUTH_MESSAGE if token else None, run_history=False, show_error=True,
                **launch_kwargs())
    return 0


if __name__ == "__main__":
    sys.exit(main())
