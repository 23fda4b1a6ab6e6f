"""Every serving metric, computed from request timelines, each with its definition.

Clock boundaries (all client-side, ``time.monotonic``):
``scheduled`` (due by the arrival schedule) <= ``started`` (the client task ran) <= ``sent``
(request written, after any concurrency-cap wait) < ``first chunk`` (first SSE chunk with choices,
possibly role-only) <= ``first token`` (first chunk carrying a token) <= ``last token`` <= ``end``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from adaptgate.bench.timeline import RequestRecord
from adaptgate.messages import Said
from adaptgate.stats import Distribution

if TYPE_CHECKING:  # annotations only: models imports this module
    from adaptgate.bench.models import SLOConfig

# Each metric's definition, English and Chinese side by side (a report renders either).
DEFINITIONS: dict[str, Said] = {
    key: Said(text=en, zh=zh)
    for key, (en, zh) in {
        "ttft_ms": (
            "time to first token: sent -> first SSE chunk carrying a token (text, content or "
            "reasoning); role-only and empty chunks do not count",
            "首 token 时延：请求发出 -> 第一个携带 token（text、content 或 reasoning）的 SSE "
            "chunk；只含 role 的 chunk 和空 chunk 不算",
        ),
        "ttft_first_chunk_ms": (
            "sent -> first SSE chunk with choices, even empty/role-only (vllm bench serve's and "
            "EvalScope's TTFT; reads low when a role chunk precedes prefill end)",
            "请求发出 -> 第一个带 choices 的 SSE chunk，空的或只含 role 的也算（即 "
            "`vllm bench serve` 和 EvalScope 的 TTFT；role chunk 先于 prefill 结束到达时会偏低）",
        ),
        "ttfc_ms": (
            "time to first content token: sent -> first chunk with answer content, after any "
            "reasoning (reasoning models); equals TTFT for other models",
            "首个回答 token 时延：请求发出 -> 第一个带回答内容（推理之后）的 chunk（思考模型）；"
            "其他模型与 TTFT 相同",
        ),
        "tpot_ms": (
            "time per output token excluding the first: (last token - first token) / "
            "(output tokens - 1), per request with >1 output token (vllm bench serve's TPOT)",
            "除首 token 外每个输出 token 的时间：(末 token - 首 token) / (输出 token 数 - 1)，"
            "按请求计算，仅含输出多于 1 个 token 的请求（即 `vllm bench serve` 的 TPOT）",
        ),
        "itl_ms": (
            "inter-token latency: gaps between consecutive token-carrying chunks, flattened over "
            "requests (per chunk, not per token; vllm bench serve's ITL)",
            "token 间时延：相邻两个携带 token 的 chunk 之间的间隔，汇总所有请求（按 chunk 而非按 "
            "token 计；即 `vllm bench serve` 的 ITL）",
        ),
        "e2el_ms": (
            "end-to-end latency: sent -> last token-carrying chunk (vllm bench serve's E2EL)",
            "端到端时延：请求发出 -> 最后一个携带 token 的 chunk（即 `vllm bench serve` 的 E2EL）",
        ),
        "e2el_incl_queue_ms": (
            "scheduled -> last token: E2E latency including client-side queueing "
            "(concurrency-cap wait and dispatch lateness)",
            "计划发出时刻 -> 末 token：含客户端排队（并发上限等待与发出延迟）的端到端时延",
        ),
        "queue_ms": (
            "client-side queueing: scheduled -> sent",
            "客户端排队：计划发出时刻 -> 实际发出",
        ),
        "lateness_ms": (
            "dispatch lateness of the client itself: scheduled -> client task started",
            "客户端自身的发出延迟：计划发出时刻 -> 客户端任务开始",
        ),
        "decode_speed_tok_s": (
            "per-request decode speed = 1000 / TPOT(ms): 'single-stream throughput' meaning 1 "
            "(excludes TTFT)",
            "单请求解码速度 = 1000 / TPOT(ms)：“单路吞吐”的第一种含义（不含 TTFT）",
        ),
        "request_output_tok_s": (
            "per-request output tokens / E2E latency: 'single-stream throughput' meaning 2 "
            "(includes TTFT)",
            "单请求输出 token 数 / 端到端时延：“单路吞吐”的第二种含义（含 TTFT）",
        ),
        "output_throughput_per_concurrency": (
            "output throughput / mean concurrency: 'single-stream throughput' meaning 3 (tok/s "
            "per in-flight request)",
            "输出吞吐 / 平均并发：“单路吞吐”的第三种含义（每个在途请求的 tok/s）",
        ),
        "request_throughput": (
            "successful requests / duration (req/s)",
            "成功请求数 / 测试时长（req/s）",
        ),
        "output_throughput": (
            "output tokens of successful requests / duration (tok/s); output tokens from the "
            "server's usage when sent, else token chunks",
            "成功请求的输出 token 数 / 测试时长（tok/s）；服务端返回 usage 时按 usage 计，"
            "否则按 token chunk 计",
        ),
        "total_token_throughput": (
            "(input + output tokens of successful requests) / duration (tok/s)",
            "成功请求的（输入 + 输出 token 数）/ 测试时长（tok/s）",
        ),
        "request_goodput": (
            "successful requests meeting every SLO / duration (req/s); TPOT of a one-token "
            "request counts as 0",
            "满足全部 SLO 的成功请求数 / 测试时长（req/s）；只输出一个 token 的请求 TPOT 记为 0",
        ),
        "duration_s": (
            "whole run: epoch (first scheduled dispatch) -> last response end; steady state: "
            "first completion -> last dispatch",
            "全程：起点（第一个计划发出时刻）-> 最后一个响应结束；稳态：第一个请求完成 -> "
            "最后一个请求发出",
        ),
        "peak_concurrency": (
            "most requests in flight (sent -> end) at any instant",
            "任一时刻在途请求（发出 -> 结束）的最大数量",
        ),
        "mean_concurrency": (
            "time-average of requests in flight over the duration",
            "测试时长内在途请求数的时间平均",
        ),
        "steady_state": (
            "window from the first completion to the last dispatch: the pipeline is full and "
            "still fed; latencies of requests sent in it, throughput of completions in it",
            "从第一个请求完成到最后一个请求发出的时间窗：流水线已满且仍在进料；时延取窗内发出的"
            "请求，吞吐取窗内完成的请求",
        ),
    }.items()
}


class BenchMetrics(BaseModel):
    window: str = Field(description="'whole run' or 'steady state'")
    start_s: float
    end_s: float
    duration_s: float
    completed: int
    failed: int
    failures_by_reason: dict[str, int] = Field(default_factory=dict)
    total_input_tokens: int
    total_output_tokens: int
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    request_goodput: float | None = None
    goodput_fraction: float | None = None
    peak_concurrency: int
    mean_concurrency: float
    output_throughput_per_concurrency: float | None
    ttft_ms: Distribution
    ttft_first_chunk_ms: Distribution
    ttfc_ms: Distribution
    tpot_ms: Distribution
    itl_ms: Distribution
    e2el_ms: Distribution
    e2el_incl_queue_ms: Distribution
    queue_ms: Distribution
    lateness_ms: Distribution
    decode_speed_tok_s: Distribution
    request_output_tok_s: Distribution
    output_tokens: Distribution
    input_tokens: Distribution


def _ms(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else (b - a) * 1000.0


def tpot_ms(r: RequestRecord) -> float | None:
    n = r.output_tokens
    if n <= 1 or r.first_token_at is None or r.last_token_at is None:
        return None
    return (r.last_token_at - r.first_token_at) * 1000.0 / (n - 1)


def itls_ms(r: RequestRecord) -> list[float]:
    t = r.token_times
    return [(b - a) * 1000.0 for a, b in pairwise(t)]


def meets_slo(r: RequestRecord, slo: SLOConfig) -> bool:
    if slo.ttft_ms is not None and (_ms(r.sent_at, r.first_token_at) or 0) > slo.ttft_ms:
        return False
    if slo.tpot_ms is not None and (tpot_ms(r) or 0.0) > slo.tpot_ms:
        return False
    return not (slo.e2el_ms is not None and (_ms(r.sent_at, r.last_token_at) or 0) > slo.e2el_ms)


def concurrency(records: Sequence[RequestRecord], start: float, end: float) -> tuple[int, float]:
    """(peak, time-average) of in-flight requests over [start, end]."""
    events: list[tuple[float, int]] = []
    busy = 0.0
    for r in records:
        if r.sent_at is None:
            continue
        stop = r.end_at if r.end_at is not None else end
        events += [(r.sent_at, 1), (stop, -1)]
        busy += max(0.0, min(stop, end) - max(r.sent_at, start))
    peak = level = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):  # ends before starts at ties
        level += delta
        peak = max(peak, level)
    span = end - start
    return peak, (busy / span if span > 0 else 0.0)


def compute(
    records: Sequence[RequestRecord],
    slo: SLOConfig | None = None,
    *,
    window: tuple[float, float] | None = None,
) -> BenchMetrics:
    """Metrics of the whole run, or of the requests sent within ``window`` (steady state)."""
    ends = [r.end_at for r in records if r.end_at is not None]
    if window is None:
        start, end = 0.0, max(ends, default=0.0)
        chosen = list(records)
        done = [r for r in chosen if r.ok]
    else:
        start, end = window
        chosen = [r for r in records if r.sent_at is not None and start <= r.sent_at <= end]
        done = [r for r in records if r.ok and r.end_at is not None and start <= r.end_at <= end]
    duration = max(end - start, 1e-9)
    ok = [r for r in chosen if r.ok]
    failed = [r for r in chosen if not r.ok]
    out_tok = sum(r.output_tokens for r in done)
    in_tok = sum(r.input_tokens for r in done)
    peak, mean_conc = concurrency(records if window else chosen, start, end)
    good = [r for r in ok if meets_slo(r, slo)] if slo is not None and slo.any else None
    tpots = [v for r in ok if (v := tpot_ms(r)) is not None]
    e2els = [v for r in ok if (v := _ms(r.sent_at, r.last_token_at)) is not None]

    def dist(values: Sequence[float | None], unit: str = "ms") -> Distribution:
        return Distribution.of([v for v in values if v is not None], unit=unit)

    output_tp = out_tok / duration
    return BenchMetrics(
        window="whole run" if window is None else "steady state",
        start_s=start,
        end_s=end,
        duration_s=duration,
        completed=len(ok) if window is None else len(done),
        failed=len(failed),
        failures_by_reason=dict(Counter(r.error or "unknown" for r in failed)),
        total_input_tokens=in_tok,
        total_output_tokens=out_tok,
        request_throughput=len(done) / duration,
        output_throughput=output_tp,
        total_token_throughput=(in_tok + out_tok) / duration,
        request_goodput=None if good is None else len(good) / duration,
        goodput_fraction=None if good is None or not ok else len(good) / len(ok),
        peak_concurrency=peak,
        mean_concurrency=mean_conc,
        output_throughput_per_concurrency=output_tp / mean_conc if mean_conc > 0 else None,
        ttft_ms=dist([_ms(r.sent_at, r.first_token_at) for r in ok]),
        ttft_first_chunk_ms=dist([_ms(r.sent_at, r.first_chunk_at) for r in ok]),
        ttfc_ms=dist([_ms(r.sent_at, r.first_content_at or r.first_token_at) for r in ok]),
        tpot_ms=dist(tpots),
        itl_ms=dist([v for r in ok for v in itls_ms(r)]),
        e2el_ms=dist(e2els),
        e2el_incl_queue_ms=dist(
            [
                _ms(r.scheduled_at if r.scheduled_at is not None else r.sent_at, r.last_token_at)
                for r in ok
            ]
        ),
        queue_ms=dist([_ms(r.scheduled_at, r.sent_at) for r in chosen]),
        lateness_ms=dist([_ms(r.scheduled_at, r.started_at) for r in chosen]),
        decode_speed_tok_s=dist([1000.0 / v for v in tpots if v > 0], "tok/s"),
        request_output_tok_s=dist(
            [r.output_tokens * 1000.0 / v for r in ok if (v := _ms(r.sent_at, r.last_token_at))],
            "tok/s",
        ),
        output_tokens=dist([float(r.output_tokens) for r in ok], "tokens"),
        input_tokens=dist([float(r.input_tokens) for r in ok], "tokens"),
    )


def steady_window(records: Sequence[RequestRecord]) -> tuple[float, float] | None:
    """First completion -> last dispatch; None when that window is empty (too short a run)."""
    ends = [r.end_at for r in records if r.ok and r.end_at is not None]
    sends = [r.sent_at for r in records if r.sent_at is not None]
    if not ends or not sends:
        return None
    start, end = min(ends), max(sends)
    return (start, end) if end > start else None
