"""Sweeps over request rates or concurrencies, and the SLA search: the largest rate (or
concurrency) whose VALID run meets every SLO at the chosen quantile."""

from __future__ import annotations

from collections.abc import Callable

from adaptgate.bench.models import BenchConfig, BenchResult, SLAOutcome
from adaptgate.errors import UsageError

RunFn = Callable[[BenchConfig], BenchResult]


def with_value(cfg: BenchConfig, axis: str, value: float) -> BenchConfig:
    load = cfg.load.model_copy(
        update={"rate": value} if axis == "rate" else {"concurrency": int(value)}
    )
    label = f"{axis}={value:g}"
    output = cfg.output.model_copy(update={"label": label})
    return cfg.model_copy(update={"load": load, "output": output})


def sweep_axis(cfg: BenchConfig) -> tuple[str, list[float]]:
    if cfg.sweep.rates and cfg.sweep.concurrencies:
        raise UsageError("sweep over rates or concurrencies, not both")
    if cfg.sweep.rates:
        return "rate", sorted(cfg.sweep.rates)
    if cfg.sweep.concurrencies:
        return "concurrency", [float(c) for c in sorted(cfg.sweep.concurrencies)]
    if cfg.sweep.sla_search:
        if cfg.load.mode == "closed":
            return "concurrency", [float(cfg.load.concurrency or 1)]
        return "rate", [cfg.load.rate or 1.0]
    raise UsageError("nothing to sweep", fix="give --rates or --concurrencies")


def meets(result: BenchResult, cfg: BenchConfig) -> tuple[bool, str]:
    """Does a run meet every SLO at the configured quantile (and is it VALID)?"""
    if not result.valid:
        return False, "INVALID: " + "; ".join(r.text for r in result.validity.reasons)
    if result.metrics.failed:
        return False, f"{result.metrics.failed} failed requests"
    q = cfg.sweep.sla_quantile
    slo = cfg.slo
    m = result.metrics
    for name, limit, dist in (
        ("TTFT", slo.ttft_ms, m.ttft_ms),
        ("TPOT", slo.tpot_ms, m.tpot_ms),
        ("E2EL", slo.e2el_ms, m.e2el_ms),
    ):
        value = dist.get(q)
        if limit is not None and (value is None or value > limit):
            return False, f"{q} {name} {value} ms > {limit} ms"
    return True, "meets every SLO"


def run_sweep(cfg: BenchConfig, run: RunFn) -> tuple[str, list[BenchResult], SLAOutcome | None]:
    axis, values = sweep_axis(cfg)
    results: list[BenchResult] = []
    tried: list[tuple[float, bool, str]] = []
    for value in values:
        res = run(with_value(cfg, axis, value))
        ok, why = meets(res, cfg)
        results.append(res)
        tried.append((value, ok, why))
        if res.client.interrupted:
            return axis, results, None
    if not cfg.sweep.sla_search:
        return axis, results, None
    if not cfg.slo.any:
        raise UsageError("an SLA search needs at least one SLO", fix="give --slo-ttft-ms etc.")
    passing = [v for v, ok, _ in tried if ok]
    failing = [v for v, ok, _ in tried if not ok]
    lo = max(passing, default=None)
    hi = min((v for v in failing if lo is None or v > lo), default=None)
    steps = cfg.sweep.search_steps
    while steps > 0:
        if hi is None:  # every value passed: grow geometrically until one fails
            value = (lo or 1.0) * 2
        elif lo is None:  # every value failed: shrink
            value = hi / 2
        else:
            value = (lo + hi) / 2
        if axis == "concurrency":
            value = float(max(1, round(value)))
            if value in (lo, hi):
                break
        res = run(with_value(cfg, axis, value))
        ok, why = meets(res, cfg)
        results.append(res)
        tried.append((value, ok, why))
        if res.client.interrupted:
            break
        if ok:
            lo = value
        else:
            hi = value
        steps -= 1
    results.sort(key=lambda r: (r.config.load.rate or 0, r.config.load.concurrency or 0))
    outcome = SLAOutcome(axis=axis, quantile=cfg.sweep.sla_quantile, best=lo, tried=tried)
    return axis, results, outcome
