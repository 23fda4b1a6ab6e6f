"""A stand-in for ``python -m vllm.entrypoints.openai.api_server`` when vLLM is unavailable.

Tests copy it to ``<tmp>/vllm/entrypoints/openai/api_server.py`` (a namespace package) and put
``<tmp>`` on PYTHONPATH. Like vLLM it starts an engine child process in its own process group,
writes a ``vllm_dist_*`` file and a UUID socket into the temporary directory, logs its KV-cache
size and its non-default args as vLLM does, and serves /health, /version and /v1/models.
FAKE_VLLM_MODE picks a behaviour:
ok | crash (print FAKE_VLLM_LOG, exit 1) | fatal_hang (log an engine failure, keep running) |
stubborn (parent and engine ignore SIGINT) | immortal_child (the engine ignores SIGINT and SIGTERM).
FAKE_VLLM_PIDS names a file that receives one pid per line (server, then engine);
FAKE_VLLM_DELAY delays readiness by that many seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import tempfile
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MODE = os.environ.get("FAKE_VLLM_MODE", "ok")


def log(message: str) -> None:
    print(f"(APIServer pid={os.getpid()}) INFO {message}", flush=True)


def engine() -> None:
    """The engine child: sleeps; ignores signals as the mode says."""
    if MODE in {"stubborn", "immortal_child"}:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if MODE == "immortal_child":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(1)


def non_default_args(
    parser: argparse.ArgumentParser, args: argparse.Namespace, rest: list[str]
) -> dict[str, object]:
    """What vLLM logs as ``non-default args``: the known options given a non-default value,
    then the other flags as given (a value, or True for a switch)."""
    out: dict[str, object] = {k: v for k, v in vars(args).items() if v != parser.get_default(k)}
    i = 0
    while i < len(rest):
        key = rest[i].lstrip("-").replace("-", "_")
        if i + 1 < len(rest) and not rest[i + 1].startswith("--"):
            value: object = rest[i + 1]
            for cast in (int, float):
                try:
                    value = cast(rest[i + 1])
                    break
                except ValueError:
                    continue
            out[key], i = value, i + 2
        else:
            out[key], i = True, i + 1
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--served-model-name", default=None)
    parser.add_argument("--max-model-len", type=int, default=4096)
    args, rest = parser.parse_known_args()
    name = args.served_model_name or args.model
    pids = os.environ.get("FAKE_VLLM_PIDS")
    if MODE == "crash":
        sys.stdout.write(Path(os.environ["FAKE_VLLM_LOG"]).read_text())
        return 1
    if MODE == "stubborn":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    child = os.fork()
    if child == 0:
        engine()
        return 0
    if pids:
        with Path(pids).open("a") as fh:
            fh.write(f"{os.getpid()}\n{child}\n")
    tmp = Path(tempfile.gettempdir())
    (tmp / f"vllm_dist_{uuid.uuid4().hex}").write_text("fake")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp / str(uuid.uuid4())))
    log(f"non-default args: {non_default_args(parser, args, rest)!r}")
    log(f"Initializing a V1 LLM engine (v0.0.0+fake) with config: model={args.model!r}")
    kv = "CPU KV cache size: 1,048,576 tokens"
    log(f"{kv}, Maximum concurrency for 4,096 tokens per request: 256.00x")
    log("init engine (profile, create kv cache, warmup model) took 0.10 s")
    time.sleep(float(os.environ.get("FAKE_VLLM_DELAY", "0")))
    if MODE == "fatal_hang":
        print(f"(EngineCore pid={child}) ERROR EngineCore failed to start.", flush=True)
        while True:
            time.sleep(1)
    models = {
        "object": "list",
        "data": [{"id": name, "object": "model", "max_model_len": args.max_model_len}],
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                body = b""
            elif self.path == "/v1/models":
                body = json.dumps(models).encode()
            elif self.path == "/version":
                body = json.dumps({"version": "0.0.0+fake"}).encode()
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    log("Application startup complete.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log("Shutting down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
