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


@check("models", "/v1/models lists the served model and its max_model_len", "protocol")
def models(ctx: SmokeContext) -> Outcome:
    reply = ctx.client.get("/v1/models")
    if fail := http_failure(reply, "GET /v1/models"):
        return fail
    data = (reply.data or {}).get("data") or []
    names = [m.get("id") for m in data if isinstance(m, dict)]
    entry = next((m for m in data if m.get("id") == ctx.model), None)
    ev = evidence(reply, served=names)
    if entry is None:
        return Outcome.failed(f"model {ctx.model!r} not listed (listed: {names})", ev)
    length = entry.get("max_model_len")
    want = ctx.options.expected_max_model_len
    if want is not None and length != want:
        return Outcome.failed(f"max_model_len {length} != the plan's {want}", ev)
    if length is None:
        return Outcome.failed("the model entry has no max_model_len", ev)
    return Outcome.passed(f"{ctx.model} listed, max_model_len {length}", ev)


@check("chat", "chat completion returns non-empty text", "protocol")
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
        return Outcome.failed(f"empty message (finish_reason {finish})", ev)
    where = "content" if content else "reasoning only (the budget ended inside the thinking)"
    return Outcome.passed(f"{len(content) or len(reasoning)} chars in {where}", ev)


@check("completion", "completion endpoint returns non-empty text", "protocol")
def completion(ctx: SmokeContext) -> Outcome:
    reply = ctx.client.post("/v1/completions", ctx.completion_body())
    if fail := http_failure(reply, "POST /v1/completions"):
        return fail
    text = choice_of(reply).get("text") or ""
    ev = evidence(reply, text=excerpt(text, 200))
    if not text:
        return Outcome.failed("empty text", ev)
    ctx.cache["completion"] = reply
    return Outcome.passed(f"{len(text)} chars", ev)


def _nonstream_chat(ctx: SmokeContext) -> tuple[Reply, str, str]:
    reply = ctx.client.post("/v1/chat/completions", ctx.chat_body())
    msg = message_of(reply)
    return reply, msg.get("content") or "", reasoning_of(msg)


@check("stream_matches", "streaming and non-streaming greedy outputs are identical", "protocol")
def stream_matches(ctx: SmokeContext) -> Outcome:
    body = ctx.completion_body()
    plain = ctx.client.post("/v1/completions", body)
    streamed = ctx.client.stream("/v1/completions", body)
    for reply, what in ((plain, "completion"), (streamed, "streamed completion")):
        if fail := http_failure(reply, what):
            return fail
    text = choice_of(plain).get("text") or ""
    s_text, _, _ = streamed_text(streamed, chat=False)
    chat_plain, content, reasoning = _nonstream_chat(ctx)
    chat_stream = ctx.client.stream("/v1/chat/completions", ctx.chat_body())
    for reply, what in ((chat_plain, "chat"), (chat_stream, "streamed chat")):
        if fail := http_failure(reply, what):
            return fail
    s_content, s_reasoning, _ = streamed_text(chat_stream, chat=True)
    evs = [
        evidence(plain, text=excerpt(text, 200)),
        evidence(streamed, text=excerpt(s_text, 200), done=streamed.done),
        evidence(chat_plain, content=excerpt(content, 150), reasoning=excerpt(reasoning, 150)),
        evidence(chat_stream, content=excerpt(s_content, 150), reasoning=excerpt(s_reasoning, 150)),
    ]
    problems = []
    if not streamed.done or not chat_stream.done:
        problems.append("a stream did not end with data: [DONE]")
    if text != s_text:
        problems.append(f"completion differs at char {_first_diff(text, s_text)}")
    if (content, reasoning) != (s_content, s_reasoning):
        problems.append(
            f"chat differs (content at {_first_diff(content, s_content)}, "
            f"reasoning at {_first_diff(reasoning, s_reasoning)})"
        )
    if not text and not (content or reasoning):
        problems.append("nothing generated to compare")
    if problems:
        return Outcome.failed("; ".join(problems), *evs)
    return Outcome.passed(
        f"identical: completion {len(text)} chars, chat {len(content) + len(reasoning)} chars",
        *evs,
    )


def _first_diff(a: str, b: str) -> int:
    pairs = enumerate(zip(a, b, strict=False))
    return next((i for i, (x, y) in pairs if x != y), min(len(a), len(b)))


@check("concurrent_identical", "N concurrent identical greedy requests agree", "protocol")
def concurrent_identical(ctx: SmokeContext) -> Outcome:
    n = ctx.options.concurrency
    body = ctx.completion_body("Once upon a time, in a city by the sea,")
    with ThreadPoolExecutor(max_workers=n) as pool:
        replies = list(pool.map(lambda _: ctx.client.post("/v1/completions", body), range(n)))
    bad = [r for r in replies if not r.ok]
    if bad:
        return Outcome.failed(f"{len(bad)} of {n} requests failed", evidence(bad[0]))
    texts = [choice_of(r).get("text") or "" for r in replies]
    distinct = sorted(set(texts), key=texts.index)
    ev = evidence(replies[0], distinct=[excerpt(t, 120) for t in distinct])
    if len(distinct) != 1:
        return Outcome.failed(f"{len(distinct)} different outputs from {n} identical requests", ev)
    if not texts[0]:
        return Outcome.failed("all outputs empty", ev)
    return Outcome.passed(f"{n} identical outputs of {len(texts[0])} chars", ev)


@check("max_tokens", "max_tokens is honoured with finish_reason length", "protocol")
def max_tokens(ctx: SmokeContext) -> Outcome:
    body = ctx.completion_body(max_tokens=LENGTH_TOKENS, ignore_eos=True)
    reply = ctx.client.post("/v1/completions", body)
    if fail := http_failure(reply, "POST /v1/completions"):
        return fail
    choice = choice_of(reply)
    usage = (reply.data or {}).get("usage") or {}
    finish, used = choice.get("finish_reason"), usage.get("completion_tokens")
    ev = evidence(reply, finish_reason=finish, completion_tokens=used)
    problems = []
    if finish != "length":
        problems.append(f"finish_reason {finish!r}, not 'length'")
    if used is None:
        problems.append("no usage.completion_tokens")
    elif used > LENGTH_TOKENS:
        problems.append(f"{used} tokens generated for max_tokens={LENGTH_TOKENS}")
    elif used < LENGTH_TOKENS:
        problems.append(f"stopped after {used} < {LENGTH_TOKENS} tokens despite ignore_eos")
    if problems:
        return Outcome.failed("; ".join(problems), ev)
    return Outcome.passed(f"{used} tokens, finish_reason length", ev)


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


@check("stop_strings", "a stop string ends the output before it", "protocol")
def stop_strings(ctx: SmokeContext) -> Outcome:
    body = ctx.completion_body(max_tokens=STOP_MAX_TOKENS, ignore_eos=True)
    base = ctx.client.post("/v1/completions", body)
    if fail := http_failure(base, "baseline completion"):
        return fail
    text = choice_of(base).get("text") or ""
    picked = pick_stop(text)
    if picked is None:
        return Outcome.skipped("the baseline output has no usable stop string", evidence(base))
    stop, k = picked
    reply = ctx.client.post("/v1/completions", {**body, "stop": [stop]})
    if fail := http_failure(reply, "completion with stop"):
        return fail
    choice = choice_of(reply)
    got, finish = choice.get("text") or "", choice.get("finish_reason")
    ev = [
        evidence(base, text=excerpt(text, 200)),
        evidence(reply, stop=stop, text=excerpt(got, 200), finish_reason=finish),
    ]
    if got != text[:k]:
        return Outcome.failed(f"output with stop={stop!r} is not the text before it", *ev)
    if finish != "stop":
        return Outcome.failed(f"finish_reason {finish!r}, not 'stop'", *ev)
    return Outcome.passed(f"stopped before {stop!r} at char {k}", *ev)


def _usage_problems(usage: dict[str, Any] | None) -> list[str]:
    """Internal consistency only; whether max_tokens is honoured is the max_tokens check's."""
    if not usage:
        return ["no usage object"]
    p, c, t = (usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens"))
    problems = []
    if not isinstance(p, int) or p <= 0:
        problems.append(f"prompt_tokens {p!r}")
    if not isinstance(c, int) or c <= 0:
        problems.append(f"completion_tokens {c!r}")
    if isinstance(p, int) and isinstance(c, int) and t != p + c:
        problems.append(f"total_tokens {t} != {p} + {c}")
    return problems


def _core(usage: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens"))


@check("usage", "usage token counts are consistent", "protocol")
def usage(ctx: SmokeContext) -> Outcome:
    body = ctx.completion_body(PROMPT)
    plain = ctx.client.post("/v1/completions", body)
    streamed = ctx.client.stream(
        "/v1/completions", {**body, "stream_options": {"include_usage": True}}
    )
    chat_reply = ctx.client.post("/v1/chat/completions", ctx.chat_body(CHAT_PROMPT))
    for reply, what in ((plain, "completion"), (streamed, "stream"), (chat_reply, "chat")):
        if fail := http_failure(reply, what):
            return fail
    u_plain = (plain.data or {}).get("usage")
    u_stream = stream_usage(streamed)
    u_chat = (chat_reply.data or {}).get("usage")
    problems = [f"completion: {p}" for p in _usage_problems(u_plain)]
    problems += [f"chat: {p}" for p in _usage_problems(u_chat)]
    if u_stream is None:
        problems.append("stream with include_usage: no usage in the last chunk")
    elif u_plain and _core(u_stream) != _core(u_plain):
        problems.append(f"stream usage {_core(u_stream)} != non-stream {_core(u_plain)}")
    tok = ctx.client.post("/tokenize", {"model": ctx.model, "prompt": PROMPT})
    details: dict[str, Any] = {"completion": u_plain, "stream": u_stream, "chat": u_chat}
    if tok.ok and isinstance(tok.data, dict) and "count" in tok.data:
        details["tokenize_count"] = tok.data["count"]
        if u_plain and tok.data["count"] != u_plain.get("prompt_tokens"):
            problems.append(
                f"/tokenize counts {tok.data['count']} prompt tokens, usage says "
                f"{u_plain.get('prompt_tokens')}"
            )
    ev = evidence(plain, **details)
    if problems:
        return Outcome.failed("; ".join(problems), ev)
    return Outcome.passed(
        "prompt + completion = total; stream usage equals non-stream"
        + ("; /tokenize agrees" if "tokenize_count" in details else ""),
        ev,
    )
