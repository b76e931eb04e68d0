"""A stand-in for the Hugging Face Hub's HTTP API, as far as ``HfApi.create_repo`` / ``create_branch`` /
``upload_folder`` use it: repositories are created (409 when they exist, as the Hub answers), uploads are asked for
"regular" (inline) mode, and a commit's NDJSON body is decoded into the files it carries. Every call is recorded."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote


class StandinHub:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.repos: dict[str, dict[str, Any]] = {}
        self.prs: list[str] = []  # the repository of each pull request opened, numbered from 1
        self.cards: list[dict[str, Any]] = []  # README.md metadata the client had validated
        self.files: dict[str, dict[str, bytes]] = {}  # repo@revision -> path -> content
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                self.do_POST("GET")

            def do_POST(self, method: str = "POST") -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hub.calls.append({"method": method, "path": self.path, "auth": self.headers.get("Authorization"),
                                  "body": body})
                status, answer = hub.answer(self.path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        route = path.split("?")[0]
        if route == "/api/repos/create":
            req = json.loads(body)
            repo = f"{req['organization']}/{req['name']}"
            if repo in self.repos:
                return 409, {"error": "You already created this model repo", "url": f"{self.url}/{repo}"}
            self.repos[repo] = req
            return 200, {"url": f"{self.url}/{repo}", "name": repo}
        if route == "/api/validate-yaml":  # README.md's metadata, checked before a commit that carries it
            return self.validate_yaml(json.loads(body)["content"])
        parts = route.split("/")  # /api/models/OWNER/NAME/(preupload|commit|branch|discussions)/REV-or-NUM
        if len(parts) in (6, 7) and parts[5] == "discussions":  # a pull request opened, then read back
            return self.pull_request(f"{parts[3]}/{parts[4]}", int(parts[6]) if len(parts) == 7 else None)
        if len(parts) >= 7 and parts[1:3] == ["api", "models"]:
            repo, action, rev = f"{parts[3]}/{parts[4]}", parts[5], unquote("/".join(parts[6:]))
            if action == "preupload":
                files = json.loads(body)["files"]
                return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                       for f in files]}
            if action == "branch":
                return 200, {}
            if action == "commit":
                return 200, self.commit(repo, rev, body, "create_pr=1" in path)
        return 404, {"error": f"stand-in Hub: no route {path}"}

    def pull_request(self, repo: str, num: int | None) -> tuple[int, dict[str, Any]]:
        if num is None:
            self.prs.append(repo)
            return 200, {"num": len(self.prs), "url": f"{self.url}/{repo}/discussions/{len(self.prs)}"}
        return 200, {"title": "Upload", "num": num, "author": {"name": "me"}, "createdAt": "2026-12-05T00:00:00Z",
                     "status": "draft", "repo": {"name": repo, "type": "model"}, "isPullRequest": True,
                     "events": [], "changes": {"base": "refs/heads/main"}, "filesWithConflicts": []}

    def validate_yaml(self, content: str) -> tuple[int, dict[str, Any]]:
        import yaml

        head = content.split("---")[1] if content.startswith("---") else ""
        meta = yaml.safe_load(head) if head else None
        if not isinstance(meta, dict):
            return 400, {"error": "metadata is not a YAML mapping"}
        self.cards.append(meta)
        return 200, {"warnings": []}

    def commit(self, repo: str, rev: str, body: bytes, create_pr: bool) -> dict[str, Any]:
        store = self.files.setdefault(f"{repo}@{rev}", {})
        for line in body.decode().splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                store[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
        answer = {"commitUrl": f"{self.url}/{repo}/commit/abc123", "commitOid": "abc123" + "0" * 34,
                  "success": True}
        if create_pr:
            answer["pullRequestUrl"] = f"{self.url}/{repo}/discussions/1"
        return answer
