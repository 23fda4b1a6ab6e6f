"""A minimal OpenAI-compatible streaming server with no model behind it: tokens leave on a
configured schedule, so every millisecond a client reports above that schedule is the client's.

It is an instrument, not a stand-in for vLLM: HTTP/1.1 written directly on an asyncio protocol,
tokens written from timer callbacks on a loop with microsecond timers, so its own lateness stays
near a tenth of a millisecond at hundreds of requests per second.

Schedule (absolute, from the request's arrival): headers at once (or after ``slow_headers_s``);
for chat a role-only chunk at once (as vLLM does); token k (0-based) at ``ttft + k * itl``; then a
finish chunk, a usage chunk and ``[DONE]``.

Failure injection: ``die_after`` requests (the process exits mid-stream), ``malformed_every``
(a chunk that is not JSON), ``error_every`` (HTTP ``error_status``), ``slow_headers_s``,
``reasoning_tokens`` (the first tokens as ``reasoning_content``).

``GET /calibration/log`` returns, per request, the server's monotonic receive time and first-token
write time: the same clock as the client's on one machine, so overhead can be split into the
client's send side, the server's own lateness and the client's read side.

Run: ``python -m adaptgate.bench.calibration_server --ttft-ms 20 --itl-ms 5 --port 0``; it prints
``READY <url>`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from adaptgate.bench.scheduler import precise

WORD = "tok"


@dataclass
class Schedule:
    ttft_ms: float = 20.0
    itl_ms: float = 5.0
    output_tokens: int | None = None  # None: the request's max_tokens
    model: str = "calibration"
    slow_headers_s: float = 0.0
    die_after: int | None = None
    malformed_every: int | None = None
    error_every: int | None = None
    error_status: int = 503
    reasoning_tokens: int = 0
    role_chunk: bool = True
    log_requests: bool = True


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def _chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 411: "Length Required"}
LAST_CHUNK = b"0\r\n\r\n"
MAX_REQUEST = 16 * 1024 * 1024


class _Request:
    __slots__ = ("body", "close", "method", "path", "t")

    def __init__(self, t: float, method: str, path: str, body: bytes, close: bool) -> None:
        self.t, self.method, self.path, self.body, self.close = t, method, path, body, close

    def json(self) -> Any:
        return json.loads(self.body or b"{}")


class _Protocol(asyncio.Protocol):
    """HTTP/1.1 on one connection: requests in order, one at a time (a pipelined request waits
    until the stream before it ends). A request's arrival time is the clock reading when the
    read that completed it came in."""

    def __init__(self, server: CalibrationServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.streaming = False
        self.t = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: ARG002
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.t = time.monotonic()
        self.buf += data
        self.next_request()

    def next_request(self) -> None:
        while not self.streaming and self.transport is not None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buf[:end].decode("latin-1").split("\r\n")
            method, path, version = ([*lines[0].split(" "), "", ""])[:3]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip().lower()
            if "chunked" in headers.get("transfer-encoding", ""):
                self.respond(411, b'{"error":"send a Content-Length"}', close=True)
                return
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_REQUEST:
                self.respond(400, b'{"error":"bad Content-Length"}', close=True)
                return
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            close = headers.get("connection") == "close" or version == "HTTP/1.0"
            self.server.handle(self, _Request(self.t, method, path.split("?")[0], body, close))

    def write(self, data: bytes) -> bool:
        """Write if the client is still there."""
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(data)
        return True

    def respond(
        self, status: int, body: bytes, ctype: str = "application/json", *, close: bool = False
    ) -> None:
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if close else "")
        )
        self.write(head.encode() + b"\r\n" + body)
        if close and self.transport is not None:
            self.transport.close()

    def start_stream(self) -> None:
        self.streaming = True
        self.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
        )

    def end_stream(self, close: bool) -> None:
        self.write(LAST_CHUNK)
        self.streaming = False
        if close and self.transport is not None:
            self.transport.close()
        elif self.buf:
            self.next_request()


class CalibrationServer:
    def __init__(self, schedule: Schedule) -> None:
        self.s = schedule
        self.count = 0
        self.running = 0
        self.log: list[list[Any]] = []
        self.routes = {
            ("POST", "/v1/completions"): self.generate,
            ("POST", "/v1/chat/completions"): self.generate,
            ("GET", "/v1/models"): self.models,
            ("GET", "/version"): self.version,
            ("GET", "/health"): self.health,
            ("GET", "/metrics"): self.metrics,
            ("POST", "/tokenize"): self.tokenize,
            ("POST", "/detokenize"): self.detokenize,
            ("GET", "/calibration/log"): self.get_log,
        }

    def handle(self, conn: _Protocol, req: _Request) -> None:
        route = self.routes.get((req.method, req.path))
        if route is None:
            conn.respond(404, b'{"error":"no such route"}', close=req.close)
            return
        try:
            route(conn, req)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            conn.respond(400, json.dumps({"error": str(exc)}).encode(), close=req.close)

    @staticmethod
    def _json(conn: _Protocol, req: _Request, obj: Any, status: int = 200) -> None:
        conn.respond(status, json.dumps(obj).encode(), close=req.close)

    def models(self, conn: _Protocol, req: _Request) -> None:
        data = [{"id": self.s.model, "object": "model", "max_model_len": 1 << 20}]
        self._json(conn, req, {"object": "list", "data": data})

    def version(self, conn: _Protocol, req: _Request) -> None:
        self._json(conn, req, {"version": "calibration-2", "schedule": asdict(self.s)})

    def health(self, conn: _Protocol, req: _Request) -> None:
        conn.respond(200, b"ok", "text/plain", close=req.close)

    def metrics(self, conn: _Protocol, req: _Request) -> None:
        m = f'{{model_name="{self.s.model}"}}'
        text = (
            "# TYPE vllm:num_requests_running gauge\n"
            f"vllm:num_requests_running{m} {self.running}\n"
            f"vllm:num_requests_waiting{m} 0\n"
            f"vllm:request_success_total{m} {self.count}\n"
        )
        conn.respond(200, text.encode(), "text/plain; version=0.0.4", close=req.close)

    def tokenize(self, conn: _Protocol, req: _Request) -> None:
        words = str(req.json().get("prompt", "")).split()
        tokens = [sum(map(ord, w)) % 50000 for w in words]
        self._json(conn, req, {"count": len(tokens), "tokens": tokens, "max_model_len": 1 << 20})

    def detokenize(self, conn: _Protocol, req: _Request) -> None:
        tokens = req.json().get("tokens", [])
        self._json(conn, req, {"prompt": " ".join(f"w{t}" for t in tokens)})

    def get_log(self, conn: _Protocol, req: _Request) -> None:
        self._json(conn, req, {"clock": "time.monotonic", "requests": self.log})

    def generate(self, conn: _Protocol, req: _Request) -> None:
        self.count += 1
        n, s = self.count, self.s
        body = req.json()
        if s.error_every and n % s.error_every == 0:
            error = {"object": "error", "message": "injected error"}
            self._json(conn, req, error, status=s.error_status)
            return
        n_out = s.output_tokens or int(body.get("max_tokens") or 16)
        prompt = body.get("prompt") or " ".join(m["content"] for m in body.get("messages", []))
        n_in = len(prompt) if isinstance(prompt, list) else len(str(prompt).split())
        entry: list[Any] = [req.t, None, n]
        if s.log_requests:
            self.log.append(entry)
        _Stream(self, conn, req, n, n_in, n_out, entry).start()


class _Stream:
    """One streamed response, driven by timer callbacks (no task per request): headers (after
    ``slow_headers_s``), the role chunk for chat, token k at ``t0 + ttft + k * itl``, the finish
    chunk, the usage chunk, ``[DONE]``."""

    def __init__(
        self,
        server: CalibrationServer,
        conn: _Protocol,
        req: _Request,
        n: int,
        n_in: int,
        n_out: int,
        entry: list[Any],
    ) -> None:
        self.server, self.s, self.conn, self.req = server, server.s, conn, req
        self.n, self.n_in, self.n_out, self.entry = n, n_in, n_out, entry
        self.chat = req.path.endswith("/chat/completions")
        self.loop = asyncio.get_running_loop()
        self.base = {
            "id": f"cmpl-{n}",
            "object": "chat.completion.chunk" if self.chat else "text_completion",
            "model": self.s.model,
            "created": 0,
        }
        self.token = _chunk(self.chunk(" " + WORD))
        self.reasoning = _chunk(self.chunk(" " + WORD, reasoning=True))

    def chunk(self, text: str = "", finish: str | None = None, reasoning: bool = False) -> bytes:
        if self.chat:
            delta = {"reasoning_content": text} if reasoning else {"content": text}
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text, "finish_reason": finish}
        return _sse({**self.base, "choices": [choice]})

    def start(self) -> None:
        self.conn.streaming = True
        self.server.running += 1
        if self.s.slow_headers_s:
            self.loop.call_at(self.req.t + self.s.slow_headers_s, self.headers)
        else:
            self.headers()

    def headers(self) -> None:
        self.conn.start_stream()
        if self.chat and self.s.role_chunk:
            role = {"index": 0, "delta": {"role": "assistant", "content": ""}}
            self.conn.write(_chunk(_sse({**self.base, "choices": [role]})))
        self.emit(0)

    def emit(self, k: int) -> None:
        """Write every token due by now from k on, then schedule the next or end the stream."""
        s, t0 = self.s, self.req.t
        while k < self.n_out:
            due = t0 + (s.ttft_ms + k * s.itl_ms) / 1000.0
            if self.loop.time() < due:
                self.loop.call_at(due, self.emit, k)
                return
            if s.die_after is not None and self.n >= s.die_after and k >= self.n_out // 2:
                os._exit(17)  # a crash mid-stream, as abrupt as a real one
            if s.malformed_every and self.n % s.malformed_every == 0 and k == self.n_out // 2:
                self.conn.write(_chunk(b'data: {"choices": [{"text": "broken\n\n'))
                self.end()
                return
            if not self.conn.write(self.reasoning if k < s.reasoning_tokens else self.token):
                self.end()  # the client went away
                return
            if k == 0:
                self.entry[1] = time.monotonic()
            k += 1
        usage = {
            "prompt_tokens": self.n_in,
            "completion_tokens": self.n_out,
            "total_tokens": self.n_in + self.n_out,
        }
        self.conn.write(_chunk(self.chunk("", finish="length")))
        self.conn.write(_chunk(_sse({**self.base, "choices": [], "usage": usage})))
        self.conn.write(_chunk(b"data: [DONE]\n\n"))
        self.end()

    def end(self) -> None:
        self.server.running -= 1
        self.conn.end_stream(self.req.close)


def serve(schedule: Schedule, host: str = "127.0.0.1", port: int = 0) -> None:
    async def main() -> None:
        gc.freeze()
        gc.set_threshold(100_000, 50, 1000)  # no collection pauses in the instrument
        server = CalibrationServer(schedule)
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(lambda: _Protocol(server), host, port, backlog=4096)
        bound = srv.sockets[0].getsockname()[1]
        print(f"READY http://{host}:{bound}", flush=True)
        await srv.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        precise.run(main())


@contextlib.contextmanager
def launch(schedule: Schedule, *, timeout_s: float = 20.0) -> Iterator[tuple[str, Any]]:
    """Start the server in a subprocess on a free port; yields (url, process); always stops it."""
    args = [
        sys.executable,
        "-m",
        "adaptgate.bench.calibration_server",
        "--json",
        json.dumps(asdict(schedule)),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout_s
        line = ""
        while time.monotonic() < deadline and proc.stdout is not None:
            line = proc.stdout.readline()
            if line.startswith("READY ") or proc.poll() is not None:
                break
        if not line.startswith("READY "):
            err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
            raise RuntimeError(f"calibration server did not start: {line!r} {err[-2000:]}")
        yield line.split()[1], proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--json", help="the whole Schedule as JSON (overrides the options below)")
    for name, field in Schedule.__dataclass_fields__.items():
        if name == "log_requests":
            continue
        kind = float if "float" in str(field.type) else int if "int" in str(field.type) else str
        if "bool" in str(field.type):
            continue
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=field.default)
    ns = p.parse_args(argv)
    if ns.json:
        schedule = Schedule(**json.loads(ns.json))
    else:
        schedule = Schedule(
            **{k: v for k, v in vars(ns).items() if k in Schedule.__dataclass_fields__}
        )
    serve(schedule, ns.host, ns.port)


if __name__ == "__main__":
    main()
