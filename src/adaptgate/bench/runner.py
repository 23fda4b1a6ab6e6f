"""One benchmark run, end to end: ask the server who it is, build the workload, warm up, run the
schedule on the client process(es) while scraping ``/metrics``, compute, check, record."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

from adaptgate.bench.backends.openai import OpenAIBackend, auth_headers, new_session
from adaptgate.bench.data import PromptItem, dataset, prompt_set_hash
from adaptgate.bench.data.tokenizers import ServerTokenizer, Tokenizer, WordTokenizer
from adaptgate.bench.metrics import compute, steady_window
from adaptgate.bench.models import BenchConfig, BenchResult, Reproducibility
from adaptgate.bench.scheduler import precise
from adaptgate.bench.scheduler.arrivals import arrival_offsets, offsets_for_duration
from adaptgate.bench.scheduler.loop import Job, WorkerPlan, run_worker
from adaptgate.bench.scheduler.workers import auto_workers, run_plans, split
from adaptgate.bench.server import Scraper, ServerInfo, probe
from adaptgate.bench.timeline import RequestRecord
from adaptgate.bench.validity import ClientHealth, assess, delivered_rates
from adaptgate.console import Output
from adaptgate.errors import UsageError
from adaptgate.stats import Distribution

START_MARGIN_S = 0.2  # lead time between "every client is ready" and the first dispatch


@dataclass
class Prepared:
    server: ServerInfo
    items: list[PromptItem]
    offsets: list[float] | None


async def _prepare(cfg: BenchConfig) -> Prepared:
    ep, ds, load = cfg.endpoint, cfg.dataset, cfg.load
    headers = auth_headers(ep)
    async with new_session() as session:
        version, models, has_metrics = await probe(session, ep.url, headers, ep.model)
        model = ep.model or str(models[0]["id"])
        entry = next((m for m in models if m.get("id") == model), {})
        tok: Tokenizer = WordTokenizer()
        fingerprint = None
        if ds.align_with_server:
            server_tok = ServerTokenizer(session, ep.url, model, headers)
            try:
                fingerprint = await server_tok.fingerprint()
                tok = server_tok
            except Exception:  # noqa: BLE001 - no /tokenize: fall back to approximate lengths
                fingerprint = None
        offsets: list[float] | None = None
        if load.mode == "open" and load.duration_s is not None and load.rate is not None:
            offsets = offsets_for_duration(
                load.duration_s,
                load.rate,
                load.arrival,
                burstiness=load.burstiness,
                seed=load.seed,
            )
            n = len(offsets)
        elif load.num_requests is not None:
            n = load.num_requests
        else:  # closed loop for a duration: enough prompts to cycle through
            n = 1024
        if load.mode == "open" and offsets is None:
            offsets = arrival_offsets(
                n, load.rate, load.arrival, burstiness=load.burstiness, seed=load.seed
            )
        builder = dataset(ds.kind)
        unique = min(n, 4096)
        items = await builder(ds, unique, tok)
        items = [items[i % len(items)] for i in range(n)]
    server = ServerInfo(
        url=ep.url,
        version=version,
        models=models,
        model=model,
        max_model_len=entry.get("max_model_len"),
        tokenizer=tok.name,
        tokenizer_fingerprint=fingerprint,
        has_metrics=has_metrics,
    )
    return Prepared(server, items, offsets)


def _jobs(prep: Prepared, backend: OpenAIBackend) -> list[Job]:
    jobs = []
    for i, item in enumerate(prep.items):
        body = None if item.turns else backend.payload(item)
        off = prep.offsets[i] if prep.offsets is not None else None
        jobs.append(Job(i, item, body, off))
    return jobs


def _workers(cfg: BenchConfig) -> int:
    load = cfg.load
    if load.workers != "auto":
        return int(load.workers)
    rate = load.rate if load.mode == "open" else None
    if load.client_cpus:  # the client's own CPUs: a local server is not on them
        return min(len(load.client_cpus), auto_workers(rate, cfg.dataset.output_len))
    return auto_workers(rate, cfg.dataset.output_len, cfg.endpoint.url)


async def _progress(
    stop: asyncio.Event,
    epoch: float,
    offsets: list[float] | None,
    total: int,
    duration_s: float | None,
) -> None:
    """A progress bar (terminal only) driven by the clock: dispatches due so far in an open
    loop, elapsed time otherwise. It never touches the client's hot path."""
    from bisect import bisect_right

    from adaptgate.console import progress

    unit_total: float | None = float(total) if offsets else duration_s
    with progress(unit_total, "bench", unit="requests" if offsets else "s") as bar:
        done = 0.0
        while not stop.is_set():
            now = time.monotonic() - epoch
            value = float(bisect_right(offsets, now)) if offsets else max(0.0, now)
            if unit_total is not None:
                value = min(value, unit_total)
            bar.advance(value - done)
            done = value
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)


def _prewarm_connections(cfg: BenchConfig, offsets: list[float] | None, workers: int) -> int:
    """Connections per client process to open before the epoch: the expected concurrency."""
    if cfg.load.concurrency:
        return max(1, -(-cfg.load.concurrency // workers))
    if offsets and len(offsets) > 1 and offsets[-1] > 0:
        rate = (len(offsets) - 1) / offsets[-1]
        return max(1, min(64, int(rate * 0.25) // workers + 1))
    return min(64, len(offsets or [])) or 1


@contextlib.contextmanager
def _pinned(cpus: list[int] | None) -> Iterator[None]:
    """This process (and the worker processes it starts) on ``cpus`` while the run lasts."""
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as exc:
        raise UsageError(
            f"cannot pin the client to CPUs {cpus}: {exc.strerror}",
            fix=f"choose among the CPUs this process may use: {sorted(before)}",
        ) from None
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def run_benchmark(
    cfg: BenchConfig, out: Output | None = None
) -> tuple[BenchResult, list[RequestRecord]]:
    """Run ``cfg`` once; never raises for failed requests (they are counted by reason)."""
    with _pinned(cfg.load.client_cpus):
        return _run_benchmark(cfg, out or Output())


def _run_benchmark(cfg: BenchConfig, out: Output) -> tuple[BenchResult, list[RequestRecord]]:
    prep = asyncio.run(_prepare(cfg))
    backend = OpenAIBackend(cfg.endpoint, prep.server.model, ignore_eos=cfg.dataset.ignore_eos)
    jobs = _jobs(prep, backend)
    n_workers = _workers(cfg)
    base = WorkerPlan(
        worker=0,
        endpoint=cfg.endpoint,
        model=prep.server.model,
        ignore_eos=cfg.dataset.ignore_eos,
        jobs=[],
        epoch=0.0,
        mode=cfg.load.mode,
        concurrency=cfg.load.concurrency,
        duration_s=cfg.load.duration_s,
        think_time_s=cfg.dataset.think_time_s,
        keep_text=cfg.output.keep_text,
    )
    if cfg.load.warmup_requests:
        out.status(f"warmup: {cfg.load.warmup_requests} requests")
        warm = [Job(-1 - i, j.item, j.body) for i, j in enumerate(jobs[: cfg.load.warmup_requests])]
        run_worker(
            WorkerPlan(
                **{
                    **base.__dict__,
                    "jobs": warm,
                    "mode": "closed",
                    "duration_s": None,
                    "concurrency": cfg.load.concurrency or min(8, len(warm)),
                    "epoch": time.monotonic(),
                }
            )
        )
    epoch = time.monotonic() + START_MARGIN_S
    base.epoch, base.jobs = epoch, jobs
    base.prewarm = _prewarm_connections(cfg, prep.offsets, n_workers)
    plans = split(base, n_workers)
    scraper = None
    if cfg.output.scrape_metrics and prep.server.has_metrics:
        scraper = Scraper(
            cfg.endpoint.url, auth_headers(cfg.endpoint), cfg.output.scrape_interval_s
        )
    out.status(
        f"bench: {len(jobs)} requests, {cfg.load.mode} loop, rate {cfg.load.rate or 'max'}, "
        f"concurrency {cfg.load.concurrency or '-'}, {len(plans)} client process(es)"
    )
    load_before = os.getloadavg()[0]

    async def side(stop: asyncio.Event) -> None:
        tasks = [_progress(stop, epoch, prep.offsets, len(jobs), cfg.load.duration_s)]
        if scraper is not None:
            tasks.append(scraper.run(stop))
        await asyncio.gather(*tasks)

    outputs, worker_errors, epoch = precise.run(run_plans(plans, side))
    records = sorted((r for o in outputs for r in o.records), key=lambda r: r.index)
    sched, delivered = delivered_rates(records)
    health = ClientHealth(
        workers=len(plans),
        scheduled_rate=sched if cfg.load.mode == "open" and cfg.load.rate else None,
        delivered_rate=delivered if cfg.load.mode == "open" and cfg.load.rate else None,
        lateness_ms=Distribution.of(
            [
                (r.started_at - r.scheduled_at) * 1000
                for r in records
                if r.started_at is not None and r.scheduled_at is not None
            ],
            unit="ms",
        ),
        loop_lag_ms=Distribution.of([v * 1000 for o in outputs for v in o.loop_lag_s], unit="ms"),
        cpu_share=[o.cpu_s / o.wall_s if o.wall_s > 0 else 0.0 for o in outputs],
        cpu_wait_ms=None
        if any(o.cpu_wait_s is None for o in outputs)
        else Distribution.of([1000 * v for o in outputs for v in o.cpu_wait_s or []], unit="ms"),
        worker_errors=worker_errors,
        interrupted=any(o.interrupted for o in outputs),
        load_average=[load_before, os.getloadavg()[0]],
        cpu_count=os.cpu_count(),
        client_cpus=cfg.load.client_cpus,
    )
    window = steady_window(records)
    validity = assess(records, health, cfg.validity, cfg.dataset.ignore_eos)
    run_s = max((o.wall_s for o in outputs), default=0.0)
    if scraper is not None and (warning := scraper.cost_warning(run_s)):
        validity.warnings.append(warning)
    key_set = auth_headers(cfg.endpoint) != {}
    result = BenchResult(
        label=cfg.output.label,
        config=cfg,
        server=prep.server,
        repro=Reproducibility(
            prompt_set_hash=prompt_set_hash(prep.items),
            num_prompts=len(prep.items),
            tokenizer=prep.server.tokenizer,
            tokenizer_fingerprint=prep.server.tokenizer_fingerprint,
            dataset_seed=cfg.dataset.seed,
            arrival_seed=cfg.load.seed,
            api_key_env=cfg.endpoint.api_key_env,
            api_key_sent=key_set,
        ),
        client=health,
        validity=validity,
        metrics=compute(records, cfg.slo),
        steady=compute(records, cfg.slo, window=window) if window else None,
        server_metrics=scraper.series(epoch) if scraper else [],
        epoch_monotonic=epoch,
    )
    return result, records
