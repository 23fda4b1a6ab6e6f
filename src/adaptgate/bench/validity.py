"""Was the run what it claims to be? INVALID when the client, not the server, limited it, or when
it did not run to the end; warnings when the workload differed from the one asked for."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from adaptgate.bench.scheduler.arrivals import scheduled_rate
from adaptgate.bench.timeline import RequestRecord
from adaptgate.messages import Said, said
from adaptgate.stats import Distribution

if TYPE_CHECKING:  # annotations only: models imports this module
    from adaptgate.bench.models import ValidityConfig

Status = Literal["ok", "warn", "invalid"]


class Check(BaseModel):
    name: str
    status: Status
    message: Said
    value: float | None = None
    threshold: float | None = None


class ClientHealth(BaseModel):
    """The client's own measurements of itself."""

    workers: int
    scheduled_rate: float | None = Field(
        default=None, description="(n-1)/(last due - first due) of the dispatched schedule"
    )
    delivered_rate: float | None = Field(
        default=None, description="(n-1)/(last start - first start): what the client achieved"
    )
    lateness_ms: Distribution
    loop_lag_ms: Distribution
    cpu_share: list[float] = Field(description="CPU seconds / wall seconds, per worker")
    cpu_wait_ms: Distribution | None = Field(
        default=None,
        description="per 10 ms of run, how long a client event loop waited for a CPU each time it "
        "woke, on average (kernel scheduler statistics): how late its timestamps were",
    )
    worker_errors: list[Said] = Field(default_factory=list)
    interrupted: bool = False
    load_average: list[float] = Field(
        default_factory=list, description="1-minute load average before and after the run"
    )
    cpu_count: int | None = None
    client_cpus: list[int] | None = Field(
        default=None, description="the CPUs the client was pinned to (None: not pinned)"
    )


class Validity(BaseModel):
    status: Literal["VALID", "INVALID"]
    reasons: list[Said] = Field(default_factory=list, description="why INVALID")
    warnings: list[Said] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)


def delivered_rates(records: Sequence[RequestRecord]) -> tuple[float | None, float | None]:
    due = sorted(
        r.scheduled_at for r in records if r.scheduled_at is not None and r.turn in (None, 0)
    )
    started = sorted(
        r.started_at
        for r in records
        if r.scheduled_at is not None and r.started_at is not None and r.turn in (None, 0)
    )
    return scheduled_rate(due), scheduled_rate(started)


def _typical_itl_ms(records: Sequence[RequestRecord]) -> float | None:
    """The median gap between token chunks over the successful requests."""
    gaps = [(b - a) * 1000 for r in records if r.ok for a, b in pairwise(r.token_times)]
    return Distribution.of(gaps).p50 if gaps else None


def _check_client(h: ClientHealth, cfg: ValidityConfig, itl_ms: float | None) -> list[Check]:
    checks = []
    if h.scheduled_rate and h.delivered_rate:
        shortfall = 1.0 - h.delivered_rate / h.scheduled_rate
        bad = shortfall > cfg.max_rate_shortfall
        checks.append(
            Check(
                name="delivered_rate",
                status="invalid" if bad else "ok",
                value=h.delivered_rate,
                threshold=h.scheduled_rate * (1 - cfg.max_rate_shortfall),
                message=said(
                    "bench.delivered_rate",
                    delivered=f"{h.delivered_rate:.2f}",
                    scheduled=f"{h.scheduled_rate:.2f}",
                    shortfall=f"{-shortfall:+.1%}",
                ),
            )
        )
    late_limit = cfg.max_lateness_p99_ms
    if h.scheduled_rate:
        late_limit = max(late_limit, cfg.max_lateness_gap_fraction * 1000.0 / h.scheduled_rate)
    for name, dist, limit, said_id in (
        ("dispatch_lateness_p99_ms", h.lateness_ms, late_limit, "bench.dispatch_lateness"),
        ("event_loop_lag_p99_ms", h.loop_lag_ms, cfg.max_loop_lag_p99_ms, "bench.event_loop_lag"),
    ):
        if dist.p99 is not None:
            bad = dist.p99 > limit
            checks.append(
                Check(
                    name=name,
                    status="invalid" if bad else "ok",
                    value=dist.p99,
                    threshold=limit,
                    message=said(said_id, value=f"{dist.p99:.2f}", limit=f"{limit:.1f}"),
                )
            )
    if h.cpu_share:
        busiest = max(h.cpu_share)
        bad = busiest > cfg.max_client_cpu
        checks.append(
            Check(
                name="client_cpu",
                status="invalid" if bad else "ok",
                value=busiest,
                threshold=cfg.max_client_cpu,
                message=said("bench.client_cpu", share=f"{busiest:.0%}"),
            )
        )
    if h.cpu_wait_ms is not None and h.cpu_wait_ms.p99 is not None:
        worst, limit = h.cpu_wait_ms.p99, cfg.max_cpu_wait_p99_ms
        if itl_ms:
            limit = max(limit, cfg.max_cpu_wait_itl_fraction * itl_ms)
        bad = worst > limit
        checks.append(
            Check(
                name="client_cpu_wait_p99_ms",
                status="invalid" if bad else "ok",
                value=worst,
                threshold=limit,
                message=said(
                    "bench.cpu_wait_high" if bad else "bench.cpu_wait",
                    wait=f"{worst:.2f}",
                    limit=f"{limit:.2f}",
                ),
            )
        )
    if h.load_average and h.cpu_count and max(h.load_average) > h.cpu_count:
        checks.append(
            Check(
                name="machine_load",
                status="warn",
                value=max(h.load_average),
                threshold=h.cpu_count,
                message=said(
                    "bench.machine_busy", load=f"{max(h.load_average):.1f}", cpus=h.cpu_count
                ),
            )
        )
    for err in h.worker_errors:
        checks.append(Check(name="worker", status="invalid", message=err))
    if h.interrupted:
        checks.append(
            Check(name="interrupted", status="invalid", message=said("bench.interrupted"))
        )
    return checks


def _check_workload(records: Sequence[RequestRecord], ignore_eos: bool) -> list[Check]:
    ok = [r for r in records if r.ok]
    checks = []
    if not ok:
        return [Check(name="completed", status="invalid", message=said("bench.no_success"))]
    failed = Counter(r.error for r in records if not r.ok)
    if failed:
        text = ", ".join(f"{k}: {v}" for k, v in failed.most_common())
        checks.append(
            Check(
                name="failures",
                status="warn",
                value=sum(failed.values()),
                message=said("bench.failures", count=sum(failed.values()), detail=text),
            )
        )
    if ignore_eos:
        short = [r for r in ok if r.max_tokens is not None and r.output_tokens != r.max_tokens]
        checks.append(
            Check(
                name="output_length",
                status="warn" if short else "ok",
                value=len(short),
                message=said("bench.output_length_short", short=len(short), ok=len(ok))
                if short
                else said("bench.output_length_ok"),
            )
        )
        reasons = Counter(r.finish_reason for r in ok)
        other = {k: v for k, v in reasons.items() if k != "length"}
        if other:
            checks.append(
                Check(
                    name="finish_reason",
                    status="warn",
                    value=sum(other.values()),
                    message=said("bench.finish_reasons", reasons=str(other)),
                )
            )
    with_usage = [r for r in ok if r.usage_completion_tokens is not None]
    differ = [r for r in with_usage if r.usage_completion_tokens != r.client_token_chunks]
    if not with_usage:
        checks.append(
            Check(
                name="token_counts",
                status="warn",
                message=said("bench.no_usage"),
            )
        )
    elif differ:
        checks.append(
            Check(
                name="token_counts",
                status="warn",
                value=len(differ),
                message=said("bench.token_counts_differ", count=len(differ)),
            )
        )
    prompt_off = [
        r
        for r in ok
        if r.prompt_tokens
        and r.usage_prompt_tokens is not None
        and abs(r.usage_prompt_tokens - r.prompt_tokens) > 1
    ]
    if prompt_off:
        d = Distribution.of(
            [
                r.usage_prompt_tokens - r.prompt_tokens
                for r in prompt_off
                if r.usage_prompt_tokens is not None and r.prompt_tokens
            ]
        )
        checks.append(
            Check(
                name="prompt_length",
                status="warn",
                value=len(prompt_off),
                message=said("bench.prompt_length", count=len(prompt_off), median=f"{d.p50:+.0f}"),
            )
        )
    return checks


def assess(
    records: Sequence[RequestRecord], health: ClientHealth, cfg: ValidityConfig, ignore_eos: bool
) -> Validity:
    checks = _check_client(health, cfg, _typical_itl_ms(records))
    checks += _check_workload(records, ignore_eos)
    reasons = [c.message for c in checks if c.status == "invalid"]
    warnings = [c.message for c in checks if c.status == "warn"]
    return Validity(
        status="INVALID" if reasons else "VALID", reasons=reasons, warnings=warnings, checks=checks
    )
