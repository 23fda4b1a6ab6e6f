"""Hand-made request timelines for the metric tests (a helper module, not a test file)."""

import json

from adaptgate.bench.timeline import Exchange

EPOCH = 100.0


def sse(obj) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def completion(text: str) -> bytes:
    return sse({"choices": [{"index": 0, "text": text, "finish_reason": None}]})


def chat(content: str = "", reasoning: str = "", role: bool = False) -> bytes:
    delta = {"role": "assistant", "content": ""} if role else {}
    if content:
        delta["content"] = content
    if reasoning:
        delta["reasoning_content"] = reasoning
    return sse({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})


def tail(prompt: int, completion_tokens: int) -> bytes:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion_tokens}
    return sse({"choices": [], "usage": usage}) + b"data: [DONE]\n\n"


def request_a() -> Exchange:
    """Completions. sent 2 ms, role-like empty chunk at 10 ms, tokens at 50/60/80/90 ms."""
    ex = Exchange(
        0,
        EPOCH + 0.000,
        EPOCH + 0.001,
        sent_at=EPOCH + 0.002,
        status=200,
        prompt_tokens=10,
        max_tokens=4,
    )
    ex.headers_at = EPOCH + 0.005
    ex.reads = [
        (EPOCH + 0.010, completion("")),
        (EPOCH + 0.050, completion(" a")),
        (EPOCH + 0.060, completion(" b")),
        (EPOCH + 0.080, completion(" c")),
        (EPOCH + 0.090, sse({"choices": [{"index": 0, "text": " d", "finish_reason": "length"}]})),
        (EPOCH + 0.095, tail(10, 4)),
    ]
    ex.end_at = EPOCH + 0.095
    return ex


def request_b() -> Exchange:
    """Chat, reasoning model: reasoning at 100/110 ms, content at 130/140 ms; sent at 60 ms."""
    ex = Exchange(
        1,
        EPOCH + 0.050,
        EPOCH + 0.050,
        sent_at=EPOCH + 0.060,
        status=200,
        prompt_tokens=10,
        max_tokens=4,
    )
    ex.reads = [
        (EPOCH + 0.061, chat(role=True)),
        (EPOCH + 0.100, chat(reasoning="hm")),
        (EPOCH + 0.110, chat(reasoning="m")),
        (EPOCH + 0.130, chat(content="ok")),
        (EPOCH + 0.140, chat(content="!")),
        (EPOCH + 0.150, tail(10, 4)),
    ]
    ex.end_at = EPOCH + 0.150
    return ex


def request_c() -> Exchange:
    """HTTP 503 at 100 ms."""
    ex = Exchange(
        2,
        EPOCH + 0.100,
        EPOCH + 0.100,
        sent_at=EPOCH + 0.100,
        status=503,
        prompt_tokens=10,
        max_tokens=4,
    )
    ex.body = b'{"message": "overloaded"}'
    ex.end_at = EPOCH + 0.105
    return ex


def make_result(rate: float = 10.0, *, valid: bool = True, ttft_shift: float = 0.0, label=None):
    """A BenchResult built from the hand-made timelines (TTFTs 40 and 48 ms + ttft_shift)."""
    from adaptgate.bench.metrics import compute
    from adaptgate.bench.models import BenchConfig, BenchResult, Reproducibility, ValidityConfig
    from adaptgate.bench.server import ServerInfo
    from adaptgate.bench.timeline import finalize
    from adaptgate.bench.validity import ClientHealth, assess
    from adaptgate.stats import Distribution

    records = [finalize(ex, EPOCH) for ex in (request_a(), request_b())]
    records = [
        r.model_copy(
            update={
                "token_times": [t + ttft_shift for t in r.token_times],
                "first_token_at": r.first_token_at + ttft_shift,
                "last_token_at": r.last_token_at + ttft_shift,
            }
        )
        for r in records
    ]
    cfg = BenchConfig.model_validate({"endpoint": {"url": "http://x"}, "load": {"rate": rate}})
    health = ClientHealth(
        workers=1,
        lateness_ms=Distribution.of([1.0]),
        loop_lag_ms=Distribution.of([0.1]),
        cpu_share=[0.1],
        interrupted=not valid,
    )
    return BenchResult(
        label=label,
        config=cfg,
        server=ServerInfo(url="http://x", model="m", tokenizer="words"),
        repro=Reproducibility(
            prompt_set_hash="h",
            num_prompts=2,
            tokenizer="words",
            dataset_seed=0,
            arrival_seed=0,
            api_key_env="OPENAI_API_KEY",
            api_key_sent=False,
        ),
        client=health,
        validity=assess(records, health, ValidityConfig(), True),
        metrics=compute(records),
    ), records
