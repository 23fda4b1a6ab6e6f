"""An OpenAI-compatible server that answers the built-in task's questions, right or wrong on
demand."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from adaptgate.accuracy.builtin import items

ANSWERS = {i["question"]: i["answer"] for i in items("en") + items("zh")}


def _question(body: dict[str, Any]) -> str:
    text = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
    return str(text).split("Question: ", 1)[-1].split("\nAnswer:", 1)[0].strip()


@pytest.fixture
def answering_server() -> Iterator[Callable[..., str]]:
    """``answering_server(wrong=set())`` -> the URL of a server answering each built-in question
    correctly ("The answer is 7.") except the questions in ``wrong``. It records every request
    body in ``requests``."""
    servers: list[ThreadingHTTPServer] = []

    def start(wrong: frozenset[str] = frozenset(), requests: list[Any] | None = None) -> str:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send({"object": "list", "data": [{"id": "fake", "object": "model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if requests is not None:
                    requests.append({"path": self.path, **body})
                question = _question(body)
                answer = "no idea" if question in wrong else f"The answer is {ANSWERS[question]}."
                if self.path.endswith("/chat/completions"):
                    choice = {"index": 0, "message": {"role": "assistant", "content": answer},
                              "finish_reason": "stop"}  # fmt: skip
                else:
                    choice = {"index": 0, "text": " " + answer, "finish_reason": "stop"}
                self._send({"id": "x", "object": "chat.completion", "choices": [choice]})

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
