"""A deterministic OpenAI-compatible server for the smoke tests, with switchable faults.

The "model" emits words chosen by a hash of (prompt, position): greedy output is a pure
function of the prompt, as from a real engine. ``smart=True`` answers the quality questions
well (Chinese, 60 km/h, reasoning, a weather tool call). Faults: broken_chat_template (chat
endpoints fail like a model without a usable template), ignore_max_tokens, nondeterministic,
stream_differs, bad_usage, no_extensions (vLLM's completion extensions refused with 400).
``api_key`` requires that Bearer key (``echo_auth``: the 401 quotes the header it refused);
``version`` answers GET /version. Completions take token-id prompts and return vLLM-style
``logprobs`` (``token_id:N`` with ``return_tokens_as_token_ids``) and ``prompt_logprobs``.
``answer`` replies to each request body with a text of its own (the accuracy tests' task
answers); ``requests`` records every POST body with its path.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VOCAB = [
    " the", " model", " serves", " tokens", " quickly", " and", " every", " request", " gets",
    " an", " answer", " from", " vLLM", " on", " Ascend", " hardware", " with", " care", ".",
]  # fmt: skip
EXTENSIONS = frozenset({"return_tokens_as_token_ids", "prompt_logprobs", "ignore_eos"})
TEMPLATE_ERROR = (
    "As of transformers v4.44, default chat template is no longer allowed, so you must provide "
    "a chat template if the tokenizer does not define one."
)


@dataclass
class Faults:
    broken_chat_template: bool = False
    ignore_max_tokens: bool = False
    nondeterministic: bool = False
    stream_differs: bool = False
    bad_usage: bool = False
    no_extensions: bool = False


@dataclass
class FakeConfig:
    model: str = "tiny"
    max_model_len: int = 4096
    smart: bool = False
    thinking: bool = False
    api_key: str | None = None
    echo_auth: bool = False
    version: str | None = None
    faults: Faults = field(default_factory=Faults)
    seen_auth: list[str | None] = field(default_factory=list)
    # /tokenize with messages: (messages, chat_template_kwargs) -> token ids, as vLLM renders
    # the chat; None: the server cannot tokenize chats (404)
    render_chat: Callable[[list[dict[str, Any]], dict[str, Any]], list[int]] | None = None
    # the whole reply to a request body, instead of generated words
    answer: Callable[[dict[str, Any]], str] | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)


def _token(prompt: str, i: int, salt: str) -> str:
    h = hashlib.sha256(f"{salt}|{prompt}|{i}".encode()).digest()
    return VOCAB[h[0] % len(VOCAB)]


def _logprobs(tokens: list[str], body: dict[str, Any]) -> dict[str, Any]:
    """vLLM's ``logprobs`` and ``prompt_logprobs`` of a completion, where asked for."""
    out: dict[str, Any] = {}
    if body.get("logprobs") is not None:
        as_ids = bool(body.get("return_tokens_as_token_ids"))
        names = [f"token_id:{VOCAB.index(t)}" if as_ids and t in VOCAB else t for t in tokens]
        out["logprobs"] = {
            "tokens": names,
            "token_logprobs": [-0.25] * len(names),
            "top_logprobs": [{n: -0.25, "token_id:0": -2.0} for n in names],
        }
    ids = body.get("prompt")
    if body.get("prompt_logprobs") is not None and isinstance(ids, list):
        entry = {"logprob": -1.5, "rank": 1, "decoded_token": "x"}
        out["prompt_logprobs"] = [None] + [{str(t): entry} for t in ids[1:]]
    return out


def _smart_answer(prompt: str) -> tuple[str, str, list[dict[str, Any]]] | None:
    """(reasoning, content, tool_calls) for the quality questions."""
    if "weather" in prompt:
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})},
        }
        return "", "", [call]
    if "人工智能" in prompt:
        return "", "人工智能是研究如何让计算机模拟人类智能的科学。", []
    if "120 km" in prompt:
        return "120 / 2 = 60", "The average speed is 60 km/h.", []
    if "9.11" in prompt:
        return "9.8 = 9.80 and 9.80 > 9.11", "9.8 is larger.", []
    return None


class FakeOpenAI:
    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- the "engine" ---------------------------------------------------------------------
    def generate(self, prompt: str, body: dict[str, Any]) -> tuple[list[str], str]:
        cfg = self.config
        limit = int(body.get("max_tokens") or 16)
        if cfg.faults.ignore_max_tokens:
            limit = limit * 3 + 5
        salt = str(random.random()) if cfg.faults.nondeterministic else "greedy"
        tokens = [_token(prompt, i, salt) for i in range(limit)]
        finish = "stop" if cfg.faults.ignore_max_tokens else "length"
        stops = body.get("stop") or []
        text = "".join(tokens)
        for s in [stops] if isinstance(stops, str) else stops:
            k = text.find(s)
            if k >= 0:
                kept, acc = [], ""
                for t in tokens:
                    if len(acc) + len(t) > k:
                        break
                    kept.append(t)
                    acc += t
                if acc != text[:k]:
                    kept.append(text[len(acc) : k])
                return kept, "stop"
        return tokens, finish

    def usage(self, prompt: str, completion: int) -> dict[str, int]:
        p = len(prompt.split())
        total = p + completion + (1 if self.config.faults.bad_usage else 0)
        return {"prompt_tokens": p, "completion_tokens": completion, "total_tokens": total}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: object) -> None:
                pass

            def _send(self, status: int, data: Any) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _authorized(self) -> bool:
                auth = self.headers.get("Authorization")
                fake.config.seen_auth.append(auth)
                key = fake.config.api_key
                if key and auth != f"Bearer {key}":
                    quoted = f": {auth}" if fake.config.echo_auth else ""
                    self._send(401, {"error": {"message": f"Unauthorized{quoted}"}})
                    return False
                return True

            def do_GET(self) -> None:
                if not self._authorized():
                    return
                if self.path == "/health":
                    self._send(200, {})
                elif self.path == "/version" and fake.config.version:
                    self._send(200, {"version": fake.config.version})
                elif self.path == "/v1/models":
                    entry = {"id": fake.config.model, "max_model_len": fake.config.max_model_len}
                    self._send(200, {"object": "list", "data": [entry]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                if not self._authorized():
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.config.requests.append({"path": self.path, **body})
                if self.path == "/tokenize" and "messages" in body:
                    render = fake.config.render_chat
                    if render is None:
                        self._send(404, {"error": {"message": "not found"}})
                        return
                    ids = render(body["messages"], body.get("chat_template_kwargs") or {})
                    self._send(200, {"count": len(ids), "tokens": ids})
                elif self.path == "/tokenize":
                    self._send(200, {"count": len(str(body.get("prompt", "")).split())})
                elif self.path == "/v1/completions":
                    self._completion(body, chat=False)
                elif self.path == "/v1/chat/completions":
                    if fake.config.faults.broken_chat_template:
                        self._send(400, {"error": {"message": TEMPLATE_ERROR, "code": 400}})
                        return
                    self._completion(body, chat=True)
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def _completion(self, body: dict[str, Any], *, chat: bool) -> None:
                if fake.config.faults.no_extensions and EXTENSIONS & set(body):
                    self._send(400, {"error": {"message": "unexpected fields", "code": 400}})
                    return
                if body.get("model") != fake.config.model:
                    self._send(404, {"error": {"message": f"model {body.get('model')} unknown"}})
                    return
                if chat:
                    prompt = " ".join(m.get("content", "") for m in body["messages"])
                    prompt = f"<|im_start|>user {prompt} <|im_end|> <|im_start|>assistant"
                else:
                    prompt = body["prompt"]
                    if isinstance(prompt, list):  # token ids, as precision and kvcache send
                        prompt = " ".join(str(t) for t in prompt)
                smart = _smart_answer(prompt) if fake.config.smart and chat else None
                if fake.config.answer is not None:
                    smart = "", fake.config.answer(body), []
                if smart is not None:
                    reasoning, content, calls = smart
                    if not fake.config.thinking:
                        reasoning = ""
                    tokens, finish = [content], "tool_calls" if calls else "stop"
                else:
                    reasoning, calls = "", []
                    tokens, finish = fake.generate(prompt, body)
                usage = fake.usage(prompt, len(tokens) + len(reasoning.split()))
                if body.get("stream"):
                    self._stream(tokens, reasoning, finish, usage, body, chat=chat)
                    return
                text = "".join(tokens)
                if chat:
                    msg: dict[str, Any] = {"role": "assistant", "content": text or None}
                    if reasoning:
                        msg["reasoning_content"] = reasoning
                    if calls:
                        msg["tool_calls"] = calls
                    choice: dict[str, Any] = {"index": 0, "message": msg, "finish_reason": finish}
                else:
                    choice = {"index": 0, "text": text, "finish_reason": finish}
                    choice.update(_logprobs(tokens, body))
                self._send(200, {"id": "x", "choices": [choice], "usage": usage})

            def _stream(
                self,
                tokens: list[str],
                reasoning: str,
                finish: str,
                usage: dict[str, int],
                body: dict[str, Any],
                *,
                chat: bool,
            ) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                if fake.config.faults.stream_differs:
                    tokens = tokens[:-1]

                def emit(data: Any) -> None:
                    self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
                    self.wfile.flush()

                if chat and reasoning:
                    emit({"choices": [{"index": 0, "delta": {"reasoning_content": reasoning}}]})
                for i, tok in enumerate(tokens):
                    last = i == len(tokens) - 1
                    piece = {"content": tok} if chat else None
                    choice: dict[str, Any] = {"index": 0, "finish_reason": finish if last else None}
                    if chat:
                        choice["delta"] = piece
                    else:
                        choice["text"] = tok
                    emit({"choices": [choice]})
                if (body.get("stream_options") or {}).get("include_usage"):
                    emit({"choices": [], "usage": usage})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        return Handler
