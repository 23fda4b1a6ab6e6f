"""Protocol checks: what any correct OpenAI-compatible server must do, whatever the weights.
A tiny random model passes all of them; a broken server fails the matching one."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from adaptgate.client import (
    Reply,
    choice_of,
    message_of,
    reasoning_of,
    stream_usage,
    streamed_text,
)
from adaptgate.messages import Message, joined, message
from adaptgate.smoke.base import (
    CHAT_PROMPT,
    PROMPT,
    Outcome,
    SmokeContext,
    check,
    evidence,
    http_failure,
)
from adaptgate.smoke.models import excerpt

STOP_MAX_TOKENS = 32
LENGTH_TOKENS = 5


@check("models", "protocol")
def models(ctx: SmokeContext) -> Outcome:
    reply = ctx.client.get("/v1/models")
    if fail := http_failure(reply, "GET /v1/models"):
        return fail
    data = (reply.data or {}).get("data") or []
    names = [m.get("id") for m in data if isinstance(m, dict)]
    entry = next((m for m in data if m.get("id") == ctx.model), None)
    ev = evidence(reply, served=names)
    if entry is None:
        return Outcome.failed(
            message("smoke.model_not_listed", model=repr(ctx.model), names=str(names)), ev
        )
    length = entry.get("max_model_len")
    want = ctx.options.expected_max_model_len
    if want is not None and length != want:
        return Outcome.failed(message("smoke.max_model_len_differs", length=length, want=want), ev)
    if length is None:
        return Outcome.failed(message("smoke.no_max_model_len"), ev)
    return Outcome.passed(message("smoke.model_listed", model=ctx.model, length=length), ev)


@check("chat", "protocol")
def chat(ctx: SmokeContext) -> Outcome:
    reply = ctx.client.post("/v1/chat/completions", ctx.chat_body())
    if fail := http_failure(reply, "POST /v1/chat/completions"):
        return fail
    msg = message_of(reply)
    content, reasoning = msg.get("content") or "", reasoning_of(msg)
    finish = choice_of(reply).get("finish_reason")
    ev = evidence(reply, content=excerpt(content, 200), reasoning=excerpt(reasoning, 200))
    if reasoning and ctx.thinking is None:
        ctx.thinking = True
    if not content and not reasoning:
        return Outcome.failed(message("smoke.empty_message", finish=finish), ev)
    if content:
        return Outcome.passed(message("smoke.chars_in_content", chars=len(content)), ev)
    return Outcome.passed(message("smoke.chars_in_reasoning_only", chars=len(reasoning)), ev)


@check("completion", "protocol")
def completion(ctx: SmokeContext) -> Outcome:
    reply = ctx.client.post("/v1/completions", ctx.completion_body())
    if fail := http_failure(reply, "POST /v1/completions"):
        return fail
    text = choice_of(reply).get("text") or ""
    ev = evidence(reply, text=excerpt(text, 200))
    if not text:
        return Outcome.failed(message("smoke.empty_text"), ev)
    ctx.cache["completion"] = reply
    return Outcome.passed(message("smoke.chars", chars=len(text)), ev)


def _nonstream_chat(ctx: SmokeContext) -> tuple[Reply, str, str]:
    reply = ctx.client.post("/v1/chat/completions", ctx.chat_body())
    msg = message_of(reply)
    return reply, msg.get("content") or "", reasoning_of(msg)


@check("stream_matches", "protocol")
def stream_matches(ctx: SmokeContext) -> Outcome:
    body = ctx.completion_body()
    plain = ctx.client.post("/v1/completions", body)
    streamed = ctx.client.stream("/v1/completions", body)
    for reply, what in (
        (plain, "POST /v1/completions"),
        (streamed, "POST /v1/completions stream=true"),
    ):
        if fail := http_failure(reply, what):
            return fail
    text = choice_of(plain).get("text") or ""
    s_text, _, _ = streamed_text(streamed, chat=False)
    chat_plain, content, reasoning = _nonstream_chat(ctx)
    chat_stream = ctx.client.stream("/v1/chat/completions", ctx.chat_body())
    for reply, what in (
        (chat_plain, "POST /v1/chat/completions"),
        (chat_stream, "POST /v1/chat/completions stream=true"),
    ):
        if fail := http_failure(reply, what):
            return fail
    s_content, s_reasoning, _ = streamed_text(chat_stream, chat=True)
    evs = [
        evidence(plain, text=excerpt(text, 200)),
        evidence(streamed, text=excerpt(s_text, 200), done=streamed.done),
        evidence(chat_plain, content=excerpt(content, 150), reasoning=excerpt(reasoning, 150)),
        evidence(chat_stream, content=excerpt(s_content, 150), reasoning=excerpt(s_reasoning, 150)),
    ]
    problems: list[Message] = []
    if not streamed.done or not chat_stream.done:
        problems.append(message("smoke.no_done"))
    if text != s_text:
        problems.append(message("smoke.completion_differs", at=_first_diff(text, s_text)))
    if (content, reasoning) != (s_content, s_reasoning):
        problems.append(
            message(
                "smoke.chat_differs",
                content=_first_diff(content, s_content),
                reasoning=_first_diff(reasoning, s_reasoning),
            )
        )
    if not text and not (content or reasoning):
        problems.append(message("smoke.nothing_generated"))
    if problems:
        return Outcome.failed(joined(problems), *evs)
    chars = len(content) + len(reasoning)
    return Outcome.passed(message("smoke.stream_identical", completion=len(text), chat=chars), *evs)


def _first_diff(a: str, b: str) -> int:
    pairs = enumerate(zip(a, b, strict=False))
    return next((i for i, (x, y) in pairs if x != y), min(len(a), len(b)))


@check("concurrent_identical", "protocol")
def concurrent_identical(ctx: SmokeContext) -> Outcome:
    n = ctx.options.concurrency
    body = ctx.completion_body("Once upon a time, in a city by the sea,")
    with ThreadPoolExecutor(max_workers=n) as pool:
        replies = list(pool.map(lambda _: ctx.client.post("/v1/completions", body), range(n)))
    bad = [r for r in replies if not r.ok]
    if bad:
        return Outcome.failed(
            message("smoke.requests_failed", failed=len(bad), n=n), evidence(bad[0])
        )
    texts = [choice_of(r).get("text") or "" for r in replies]
    distinct = sorted(set(texts), key=texts.index)
    ev = evidence(replies[0], distinct=[excerpt(t, 120) for t in distinct])
    if len(distinct) != 1:
        return Outcome.failed(message("smoke.outputs_differ", distinct=len(distinct), n=n), ev)
    if not texts[0]:
        return Outcome.failed(message("smoke.outputs_empty"), ev)
    return Outcome.passed(message("smoke.outputs_identical", n=n, chars=len(texts[0])), ev)


@check("max_tokens", "protocol")
def max_tokens(ctx: SmokeContext) -> Outcome:
    body = ctx.completion_body(max_tokens=LENGTH_TOKENS, ignore_eos=True)
    reply = ctx.client.post("/v1/completions", body)
    if fail := http_failure(reply, "POST /v1/completions"):
        return fail
    choice = choice_of(reply)
    usage = (reply.data or {}).get("usage") or {}
    finish, used = choice.get("finish_reason"), usage.get("completion_tokens")
    ev = evidence(reply, finish_reason=finish, completion_tokens=used)
    problems: list[Message] = []
    if finish != "length":
        problems.append(message("smoke.finish_not_length", finish=repr(finish)))
    if used is None:
        problems.append(message("smoke.no_completion_tokens"))
    elif used > LENGTH_TOKENS:
        problems.append(message("smoke.too_many_tokens", used=used, limit=LENGTH_TOKENS))
    elif used < LENGTH_TOKENS:
        problems.append(message("smoke.stopped_early", used=used, limit=LENGTH_TOKENS))
    if problems:
        return Outcome.failed(joined(problems), ev)
    return Outcome.passed(message("smoke.max_tokens_honoured", used=used), ev)


_WORD = re.compile(r"[A-Za-z0-9]{3,8}")


def pick_stop(text: str) -> tuple[str, int] | None:
    """A stop string that occurs in ``text`` after its start: an ASCII word if there is one,
    else two visible characters; and the index of its first occurrence."""
    half = len(text) // 3
    for m in _WORD.finditer(text, max(1, half)):
        k = text.find(m.group(0))
        if k >= 1:
            return m.group(0), k
    for i in range(max(1, half), len(text) - 1):
        cand = text[i : i + 2]
        if cand.strip() == cand and "\ufffd" not in cand:
            k = text.find(cand)
            if k >= 1:
                return cand, k
    return None


@check("stop_strings", "protocol")
def stop_strings(ctx: SmokeContext) -> Outcome:
    body = ctx.completion_body(max_tokens=STOP_MAX_TOKENS, ignore_eos=True)
    base = ctx.client.post("/v1/completions", body)
    if fail := http_failure(base, "POST /v1/completions"):
        return fail
    text = choice_of(base).get("text") or ""
    picked = pick_stop(text)
    if picked is None:
        return Outcome.skipped(message("smoke.no_stop_string"), evidence(base))
    stop, k = picked
    reply = ctx.client.post("/v1/completions", {**body, "stop": [stop]})
    if fail := http_failure(reply, f"POST /v1/completions stop={[stop]!r}"):
        return fail
    choice = choice_of(reply)
    got, finish = choice.get("text") or "", choice.get("finish_reason")
    ev = [
        evidence(base, text=excerpt(text, 200)),
        evidence(reply, stop=stop, text=excerpt(got, 200), finish_reason=finish),
    ]
    if got != text[:k]:
        return Outcome.failed(message("smoke.stop_not_before", stop=repr(stop)), *ev)
    if finish != "stop":
        return Outcome.failed(message("smoke.finish_not_stop", finish=repr(finish)), *ev)
    return Outcome.passed(message("smoke.stopped_before", stop=repr(stop), at=k), *ev)


def _usage_problems(usage: dict[str, Any] | None) -> list[Message]:
    """Internal consistency only; whether max_tokens is honoured is the max_tokens check's."""
    if not usage:
        return [message("smoke.no_usage")]
    p, c, t = (usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens"))
    problems = []
    if not isinstance(p, int) or p <= 0:
        problems.append(message("smoke.bad_count", field="prompt_tokens", value=repr(p)))
    if not isinstance(c, int) or c <= 0:
        problems.append(message("smoke.bad_count", field="completion_tokens", value=repr(c)))
    if isinstance(p, int) and isinstance(c, int) and t != p + c:
        problems.append(message("smoke.total_mismatch", total=t, prompt=p, completion=c))
    return problems


def _core(usage: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens"))


@check("usage", "protocol")
def usage(ctx: SmokeContext) -> Outcome:
    body = ctx.completion_body(PROMPT)
    plain = ctx.client.post("/v1/completions", body)
    streamed = ctx.client.stream(
        "/v1/completions", {**body, "stream_options": {"include_usage": True}}
    )
    chat_reply = ctx.client.post("/v1/chat/completions", ctx.chat_body(CHAT_PROMPT))
    for reply, what in (
        (plain, "POST /v1/completions"),
        (streamed, "POST /v1/completions stream=true"),
        (chat_reply, "POST /v1/chat/completions"),
    ):
        if fail := http_failure(reply, what):
            return fail
    u_plain = (plain.data or {}).get("usage")
    u_stream = stream_usage(streamed)
    u_chat = (chat_reply.data or {}).get("usage")
    problems = [
        message("smoke.usage_of", what=what, problem=p)
        for what, u in (("completion", u_plain), ("chat", u_chat))
        for p in _usage_problems(u)
    ]
    if u_stream is None:
        problems.append(message("smoke.no_stream_usage"))
    elif u_plain and _core(u_stream) != _core(u_plain):
        problems.append(
            message(
                "smoke.stream_usage_differs", stream=str(_core(u_stream)), plain=str(_core(u_plain))
            )
        )
    tok = ctx.client.post("/tokenize", {"model": ctx.model, "prompt": PROMPT})
    details: dict[str, Any] = {"completion": u_plain, "stream": u_stream, "chat": u_chat}
    if tok.ok and isinstance(tok.data, dict) and "count" in tok.data:
        details["tokenize_count"] = tok.data["count"]
        if u_plain and tok.data["count"] != u_plain.get("prompt_tokens"):
            problems.append(
                message(
                    "smoke.tokenize_differs",
                    count=tok.data["count"],
                    usage=u_plain.get("prompt_tokens"),
                )
            )
    ev = evidence(plain, **details)
    if problems:
        return Outcome.failed(joined(problems), ev)
    agrees = "_tokenize" if "tokenize_count" in details else ""
    return Outcome.passed(message(f"smoke.usage_consistent{agrees}"), ev)
