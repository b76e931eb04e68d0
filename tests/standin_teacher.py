"""A stand-in for a reasoning teacher behind an OpenAI-compatible API, for the tests and ``bench/trace_throughput.py``.

It behaves as vLLM with ``--reasoning-parser`` or DeepSeek's API do, on a real socket (the ``openai`` SDK talks to
it as to them): ``GET /v1/models``; ``POST /v1/chat/completions``, plain or streamed (SSE chunks, ``[DONE]``,
``stream_options.include_usage``); the thought in ``message.reasoning_content`` (or ``reasoning``, or inline as
``<think>…</think>`` in ``content``); ``usage``; ``GET /stats`` (the most requests it held at once); ``finish_reason`` ``length`` when ``max_tokens`` cuts a reply;
errors in OpenAI's JSON shape: 401 for a wrong key, 404 for an unknown model, 429 with ``Retry-After``, 500; a
connection closed without an answer; a fixed delay before every answer.

What it answers to a problem is scripted: ``script[problem]`` is a list of outcomes taken one per request for that
problem (the last one repeats): ``right``, ``right_long`` (a longer right trace), ``wrong``, ``cut`` (stopped by
the token limit inside the thought), ``loop`` (a repeating thought until the limit), ``no_answer`` (a closed
thought, then no answer), ``429``, ``500``, ``drop`` (the connection closed, no answer). Problems are matched by
``answers`` (problem text → gold answer) as substrings of the last user message. A token is a word.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MODEL = "standin-r1"


@dataclass
class Reply:
    thought: str | None
    answer: str
    finish: str = "stop"


def _words(n: int) -> str:
    """``n`` different words that never repeat in a pattern (a loop detector must not see a loop in them)."""
    return " ".join("".join(chr(97 + (i * 7 + j * 11 + i * j) % 26) for j in range(3 + i % 4)) for i in range(n))


def scripted(outcome: str, gold: str, max_tokens: int) -> Reply:
    """One outcome as the teacher's reply, cut at ``max_tokens`` words."""
    if outcome == "right":
        reply = Reply(f"The problem asks for a number. Working it out gives {gold}.", f"The answer is \\boxed{{{gold}}}.")
    elif outcome == "right_long":
        reply = Reply(f"Let me check this carefully. {_words(20)} So the result is {gold}.",
                      f"The answer is \\boxed{{{gold}}}.")
    elif outcome == "wrong":
        reply = Reply("A quick guess.", f"The answer is \\boxed{{{gold}1}}.")
    elif outcome == "no_answer":
        reply = Reply("I thought about it.", "I am not sure.")
    elif outcome == "cut":
        reply = Reply(_words(max_tokens + 5), "")
    elif outcome == "loop":
        reply = Reply(" ".join(["Add the two numbers again to be sure of the total."] * 40), "")
    else:
        raise ValueError(f"unknown outcome {outcome!r}")
    words = (reply.thought or "").split() + reply.answer.split()
    if len(words) > max_tokens:  # the token limit ends it inside the thought
        return Reply(" ".join(words[:max_tokens]), "", "length")
    return reply


@dataclass
class StandinTeacher:
    answers: dict[str, str] = field(default_factory=dict)
    script: dict[str, list[str]] = field(default_factory=dict)
    default: list[str] = field(default_factory=lambda: ["right"])
    reasoning: str = "reasoning_content"  # or "reasoning", or "inline" (<think> in content)
    delay_s: float = 0.0
    key: str | None = None
    model: str = MODEL
    retry_after: str = "1"

    def __post_init__(self) -> None:
        self.asked: Counter[str] = Counter()  # requests per problem, failed ones included
        self.outcomes: Counter[str] = Counter()
        self.in_flight = self.max_in_flight = 0
        self.requests: list[dict[str, Any]] = []  # every chat request body
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> StandinTeacher:
        started = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._connection, "127.0.0.1", self.port, backlog=2048))
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="standin-teacher", daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop answering: new connections are refused (as a teacher that went down)."""
        if self._loop is None or self._server is None:
            return
        loop, server = self._loop, self._server

        async def close() -> None:
            server.close()
            for writer in list(self._writers):  # open keep-alive connections break off too
                writer.transport.abort()
            for task in asyncio.all_tasks(loop) - {asyncio.current_task()}:
                task.cancel()
            await asyncio.sleep(0.05)  # the aborts close their sockets in the loop's next rounds
            loop.stop()

        asyncio.run_coroutine_threadsafe(close(), loop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = self._server = None

    # --- HTTP -----------------------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                keep = await self._handle(method, path, headers, body, writer)
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        reason = {200: "OK", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests", 500: "Server Error"}
        head = [f"HTTP/1.1 {status} {reason.get(status, 'Error')}", "Content-Type: application/json",
                f"Content-Length: {len(data)}", *(f"{k}: {v}" for k, v in (extra or {}).items())]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()

    @staticmethod
    def _error(message: str, kind: str) -> dict[str, Any]:
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}

    async def _handle(self, method: str, path: str, headers: dict[str, str], body: bytes,
                      writer: asyncio.StreamWriter) -> bool:
        if self.key is not None and headers.get("authorization") != f"Bearer {self.key}":
            await self._send(writer, 401, self._error("Incorrect API key provided", "authentication_error"))
            return True
        if path in ("/stats", "/stats/reset"):  # for the benchmark: how many requests it held at once
            if method == "POST":
                with self._lock:
                    self.max_in_flight, self.requests = self.in_flight, []
            await self._send(writer, 200, {"max_in_flight": self.max_in_flight, "requests": len(self.requests),
                                           "cpu_s": time.process_time()})
            return True
        if method == "GET" and path.endswith("/models"):
            await self._send(writer, 200, {"object": "list", "data": [
                {"id": self.model, "object": "model", "created": 0, "owned_by": "standin"}]})
            return True
        if method != "POST" or not path.endswith("/chat/completions"):
            await self._send(writer, 404, self._error(f"no route {method} {path}", "not_found_error"))
            return True
        request = json.loads(body)
        if request.get("model") != self.model:
            await self._send(writer, 404, self._error(f"The model `{request.get('model')}` does not exist",
                                                      "not_found_error"))
            return True
        with self._lock:
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request, writer)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _outcome(self, user: str) -> tuple[str, str]:
        problem = next((p for p in self.answers if p in user), None)
        gold = self.answers.get(problem, "0") if problem else "0"
        plan = self.script.get(problem, self.default) if problem else self.default
        with self._lock:
            count = self.asked[problem or user]
            self.asked[problem or user] += 1
            outcome = plan[min(count, len(plan) - 1)]
            self.outcomes[outcome] += 1
        return outcome, gold

    async def _answer(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> bool:
        user = next((m["content"] for m in reversed(request["messages"]) if m["role"] == "user"), "")
        outcome, gold = self._outcome(user)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if outcome == "drop":
            return False  # closed without a word
        if outcome == "429":
            await self._send(writer, 429, self._error("Rate limit reached", "rate_limit_error"),
                             {"Retry-After": self.retry_after})
            return True
        if outcome == "500":
            await self._send(writer, 500, self._error("The server had an error", "server_error"))
            return True
        reply = scripted(outcome, gold, int(request.get("max_tokens") or 4096))
        prompt_tokens = sum(len(str(m["content"]).split()) for m in request["messages"])
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len((reply.thought or "").split())
                 + len(reply.answer.split()), "total_tokens": 0}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if request.get("stream"):
            await self._stream(request, reply, usage, writer)
            return False
        message = {"role": "assistant", **self._parts(reply)}
        await self._send(writer, 200, {"id": f"chatcmpl-{time.monotonic_ns()}", "object": "chat.completion",
                                       "created": int(time.time()), "model": self.model,
                                       "choices": [{"index": 0, "message": message, "finish_reason": reply.finish,
                                                    "logprobs": None}], "usage": usage})
        return True

    def _parts(self, reply: Reply) -> dict[str, Any]:
        if self.reasoning == "inline":
            closed = reply.finish == "stop"
            text = f"<think>\n{reply.thought}\n" + (f"</think>\n\n{reply.answer}" if closed else "")
            return {"content": text}
        return {"content": reply.answer or None, self.reasoning: reply.thought}

    async def _stream(self, request: dict[str, Any], reply: Reply, usage: dict[str, int],
                      writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
        rid, created = f"chatcmpl-{time.monotonic_ns()}", int(time.time())

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            payload = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": self.model,
                       "choices": choices, **extra}
            return f"data: {json.dumps(payload)}\n\n".encode()

        def delta(**fields: Any) -> bytes:
            return event([{"index": 0, "delta": fields, "finish_reason": None, "logprobs": None}])

        writer.write(delta(role="assistant", content=""))
        parts = self._parts(reply)
        thought_key = next((k for k in ("reasoning_content", "reasoning") if k in parts), None)
        if thought_key and parts[thought_key]:
            for word in parts[thought_key].split(" "):
                writer.write(delta(**{thought_key: word + " "}))
        for word in (parts.get("content") or "").split(" "):
            if word:
                writer.write(delta(content=word + " "))
        writer.write(event([{"index": 0, "delta": {}, "finish_reason": reply.finish, "logprobs": None}]))
        if (request.get("stream_options") or {}).get("include_usage"):
            writer.write(event([], usage=usage))
        writer.write(b"data: [DONE]\n\n")
        await writer.drain()
