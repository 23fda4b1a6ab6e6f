"""A minimal OpenAI-compatible streaming server with no model behind it: tokens leave on a
configured schedule, so every millisecond a client reports above that schedule is the client's.

It is an instrument, not a stand-in for vLLM. Schedule (absolute, from the request's arrival):
headers at once (or after ``slow_headers_s``); for chat a role-only chunk at once (as vLLM does);
token k (0-based) at ``ttft + k * itl``; then a finish chunk, a usage chunk and ``[DONE]``.

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


class CalibrationServer:
    def __init__(self, schedule: Schedule) -> None:
        self.s = schedule
        self.count = 0
        self.running = 0
        self.log: list[tuple[float, float | None, int]] = []

    def app(self) -> Any:
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/v1/completions", self.generate)
        app.router.add_post("/v1/chat/completions", self.generate)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/version", self.version)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_post("/tokenize", self.tokenize)
        app.router.add_post("/detokenize", self.detokenize)
        app.router.add_get("/calibration/log", self.get_log)
        return app

    async def models(self, _: Any) -> Any:
        from aiohttp import web

        data = [{"id": self.s.model, "object": "model", "max_model_len": 1 << 20}]
        return web.json_response({"object": "list", "data": data})

    async def version(self, _: Any) -> Any:
        from aiohttp import web

        return web.json_response({"version": "calibration-1", "schedule": asdict(self.s)})

    async def health(self, _: Any) -> Any:
        from aiohttp import web

        return web.Response(text="ok")

    async def metrics(self, _: Any) -> Any:
        from aiohttp import web

        text = (
            "# TYPE vllm:num_requests_running gauge\n"
            f'vllm:num_requests_running{{model_name="{self.s.model}"}} {self.running}\n'
            f'vllm:num_requests_waiting{{model_name="{self.s.model}"}} 0\n'
            f'vllm:request_success_total{{model_name="{self.s.model}"}} {self.count}\n'
        )
        return web.Response(text=text, content_type="text/plain")

    async def tokenize(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.json()
        words = str(body.get("prompt", "")).split()
        tokens = [sum(map(ord, w)) % 50000 for w in words]
        return web.json_response({"count": len(tokens), "tokens": tokens, "max_model_len": 1 << 20})

    async def detokenize(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.json()
        return web.json_response({"prompt": " ".join(f"w{t}" for t in body.get("tokens", []))})

    async def get_log(self, _: Any) -> Any:
        from aiohttp import web

        return web.json_response({"clock": "time.monotonic", "requests": self.log})

    async def generate(self, request: Any) -> Any:
        from aiohttp import web

        t0 = time.monotonic()
        self.count += 1
        n = self.count
        body = await request.json()
        chat = request.path.endswith("/chat/completions")
        if self.s.error_every and n % self.s.error_every == 0:
            return web.json_response(
                {"object": "error", "message": "injected error"}, status=self.s.error_status
            )
        max_tokens = int(body.get("max_tokens") or 16)
        n_out = self.s.output_tokens or max_tokens
        prompt = body.get("prompt") or " ".join(m["content"] for m in body.get("messages", []))
        n_in = len(prompt) if isinstance(prompt, list) else len(str(prompt).split())
        if self.s.slow_headers_s:
            await asyncio.sleep(self.s.slow_headers_s)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        self.running += 1
        entry = [t0, None, n]
        if self.s.log_requests:
            self.log.append(entry)  # type: ignore[arg-type]
        try:
            await self._stream(resp, chat, n, n_in, n_out, t0, entry)
        finally:
            self.running -= 1
        return resp

    async def _stream(
        self, resp: Any, chat: bool, n: int, n_in: int, n_out: int, t0: float, entry: list[Any]
    ) -> None:
        s, loop = self.s, asyncio.get_running_loop()
        base = {
            "id": f"cmpl-{n}",
            "object": "chat.completion.chunk" if chat else "text_completion",
            "model": s.model,
            "created": 0,
        }

        def chunk(text: str = "", finish: str | None = None, reasoning: bool = False) -> bytes:
            if chat:
                delta = {"reasoning_content": text} if reasoning else {"content": text}
                choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
            else:
                choice = {"index": 0, "text": text, "finish_reason": finish}
            return _sse({**base, "choices": [choice]})

        token, reasoning_token = chunk(" " + WORD), chunk(" " + WORD, reasoning=True)
        if chat and s.role_chunk:
            await resp.write(
                _sse(
                    {
                        **base,
                        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
                    }
                )
            )
        for k in range(n_out):
            delay = t0 + (s.ttft_ms + k * s.itl_ms) / 1000.0 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if s.die_after is not None and n >= s.die_after and k >= n_out // 2:
                os._exit(17)  # a crash mid-stream, as abrupt as a real one
            if s.malformed_every and n % s.malformed_every == 0 and k == n_out // 2:
                await resp.write(b'data: {"choices": [{"text": "broken\n\n')
                return
            await resp.write(reasoning_token if k < s.reasoning_tokens else token)
            if k == 0:
                entry[1] = time.monotonic()
        await resp.write(chunk("", finish="length"))
        usage = {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}
        await resp.write(_sse({**base, "choices": [], "usage": usage}))
        await resp.write(b"data: [DONE]\n\n")


def serve(schedule: Schedule, host: str = "127.0.0.1", port: int = 0) -> None:
    from aiohttp import web

    async def main() -> None:
        gc.freeze()
        gc.set_threshold(100_000, 50, 1000)  # no collection pauses in the instrument
        runner = web.AppRunner(CalibrationServer(schedule).app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port, backlog=4096)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        bound = sockets[0].getsockname()[1]
        print(f"READY http://{host}:{bound}", flush=True)
        await asyncio.Event().wait()

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
