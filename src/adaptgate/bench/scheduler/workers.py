"""Run a schedule on one or several client processes, beside an async side task (the metrics
scraper) in the parent.

One Python event loop tops out near a thousand requests per second (fewer with many chunks per
request); beyond what one loop keeps up with, the jobs are dealt round-robin to worker processes.
Every process schedules against the same absolute epoch: ``time.monotonic`` is one system-wide
clock on Linux, so the merged schedule is the original one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from adaptgate.bench.scheduler.loop import ClientLoop, Job, WorkerOutput, WorkerPlan
from adaptgate.messages import Said, said

# Token chunks per second one client loop handles with room to spare on these machines
# (measured with benchmarks/bench_client_overhead.py: 400 req/s x 34 chunks used ~35% of a
# core); above it, "auto" adds processes.
CHUNKS_PER_LOOP = 30_000
LOCAL_HOSTS = ("127.", "localhost", "[::1]", "0.0.0.0")


def auto_workers(rate: float | None, output_len: int, url: str = "") -> int:
    """One process per CHUNKS_PER_LOOP chunks/s, leaving a CPU to a server on this machine."""
    cpus = os.cpu_count() or 1
    host = url.split("://", 1)[-1]
    if host.startswith(LOCAL_HOSTS):
        cpus = max(1, cpus - 1)
    if rate is None:
        return 1
    chunks = rate * (output_len + 2)
    return max(1, min(cpus, -(-int(chunks) // CHUNKS_PER_LOOP)))


def split(plan: WorkerPlan, n: int) -> list[WorkerPlan]:
    """Deal jobs round-robin; a concurrency limit is divided among the workers."""
    if n <= 1:
        return [plan]
    plans = []
    for w in range(n):
        conc = None
        if plan.concurrency is not None:
            conc = plan.concurrency // n + (1 if w < plan.concurrency % n else 0)
            if conc == 0:
                continue
        plans.append(replace(plan, worker=w, jobs=plan.jobs[w::n], concurrency=conc))
    return plans


async def run_plans(
    plans: list[WorkerPlan], side: Callable[[asyncio.Event], Awaitable[None]] | None = None
) -> tuple[list[WorkerOutput], list[Said], float]:
    """Run the plans (in-process if one) while ``side(stop)`` runs in this loop until they end.
    Returns the outputs, the errors of workers that died, and the epoch the run used."""
    stop = asyncio.Event()
    side_task = asyncio.ensure_future(side(stop)) if side else None
    errors: list[Said] = []
    try:
        if len(plans) == 1:
            lead = max(plans[0].epoch - time.monotonic(), 0.05)

            async def after_prewarm() -> float:
                return time.monotonic() + lead

            outputs = [await ClientLoop(plans[0]).run(after_prewarm)]
            epoch = plans[0].epoch
        else:
            outputs, errors, epoch = await _multi(plans)
    finally:
        stop.set()
        if side_task is not None:
            with contextlib.suppress(Exception):
                await side_task
    return outputs, errors, epoch


async def _multi(plans: list[WorkerPlan]) -> tuple[list[WorkerOutput], list[Said], float]:
    """Start the workers, wait until each is ready, hand them one epoch, collect the outputs."""
    margin = max(plans[0].epoch - time.monotonic(), 0.05)  # the lead time the caller asked for
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "adaptgate.bench.scheduler.child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in plans
    ]
    loop = asyncio.get_running_loop()

    def forward() -> None:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)

    loop.add_signal_handler(signal.SIGINT, forward)
    outputs: list[WorkerOutput] = []
    errors: list[Said] = []
    epoch = plans[0].epoch
    try:
        for proc, plan in zip(procs, plans, strict=True):
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(pickle.dumps(plan, protocol=pickle.HIGHEST_PROTOCOL))
            await proc.stdin.drain()
            if await proc.stdout.read(1) != b"R":
                errors.append(said("bench.worker_not_started", worker=plan.worker))
        epoch = time.monotonic() + margin
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(pickle.dumps(epoch))
            await proc.stdin.drain()
        for proc, plan in zip(procs, plans, strict=True):
            assert proc.stdout is not None
            data = await proc.stdout.read()
            await proc.wait()
            try:
                got = pickle.loads(data)
                outputs.append(got)
            except (pickle.UnpicklingError, EOFError):
                errors.append(said("bench.worker_died", worker=plan.worker, code=proc.returncode))
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    return outputs, errors, epoch


__all__ = ["Job", "WorkerOutput", "WorkerPlan", "auto_workers", "run_plans", "split"]
