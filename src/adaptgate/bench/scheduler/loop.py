"""One client event loop: dispatch requests on an absolute schedule (open loop), keep N in flight
(closed loop), or both (rate with a concurrency cap); measure its own health while doing it.

Self-measurement, reported with every run:
- dispatch lateness: a request's task started at ``started_at``; it was due at ``scheduled_at``.
- event-loop lag: every 10 ms, the time one loop iteration takes (``await sleep(0)`` round trip):
  how long a socket read that just arrived waits before its timestamp is taken.
- CPU: this process's CPU seconds over wall seconds; near 1.0 means the client was saturated.
- waiting for a CPU: every 10 ms, from the kernel's scheduler statistics
  (``/proc/thread-self/schedstat``), how long the loop's thread was runnable but not running,
  per time it was scheduled in: how late, on average in that window, a timestamp taken after
  a wakeup was. A client sharing its CPU with other work measures that work, not the server.
  Lag samples one loop iteration; this counts every wait.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from adaptgate.bench.backends.http import HTTPClient
from adaptgate.bench.backends.openai import OpenAIBackend
from adaptgate.bench.data import PromptItem
from adaptgate.bench.models import EndpointConfig
from adaptgate.bench.scheduler import precise
from adaptgate.bench.sse import parse_stream
from adaptgate.bench.timeline import Exchange, RequestRecord, finalize

LAG_INTERVAL_S = 0.01


@dataclass
class Job:
    index: int
    item: PromptItem
    body: bytes | None  # pre-serialized; None for multi-turn (built per turn)
    offset: float | None = None  # open loop: due at epoch + offset


@dataclass
class WorkerPlan:
    worker: int
    endpoint: EndpointConfig
    model: str
    ignore_eos: bool
    jobs: list[Job]
    epoch: float  # absolute monotonic time of offset 0
    mode: str = "open"
    concurrency: int | None = None
    duration_s: float | None = None
    think_time_s: float = 0.0
    keep_text: bool = False
    handle_sigint: bool = True
    prewarm: int = 1  # connections opened before the epoch, so no request pays a TCP handshake


@dataclass
class WorkerOutput:
    worker: int
    records: list[RequestRecord]
    loop_lag_s: list[float]
    cpu_s: float
    wall_s: float
    interrupted: bool = False
    cpu_wait_s: list[float] | None = None  # per 10 ms: mean wait per wakeup (None: unknown)


SCHEDSTAT = Path("/proc/thread-self/schedstat")


def cpu_wait() -> tuple[float, int] | None:
    """(seconds the calling thread waited on a run queue, times it was scheduled in), or None
    without schedstat."""
    try:
        _, wait_ns, slices = SCHEDSTAT.read_text().split()[:3]
        return int(wait_ns) / 1e9, int(slices)
    except (OSError, ValueError):
        return None


class ClientLoop:
    def __init__(self, plan: WorkerPlan) -> None:
        self.plan = plan
        self.backend = OpenAIBackend(plan.endpoint, plan.model, ignore_eos=plan.ignore_eos)
        self.exchanges: list[Exchange] = []
        self.lag: list[float] = []
        self.cpu_wait: list[float] | None = []
        self.stop = asyncio.Event()
        self.interrupted = False
        self.client: HTTPClient = self.backend.client()
        self.sem: asyncio.Semaphore | None = None

    async def run(self, get_epoch: Callable[[], Awaitable[float]] | None = None) -> WorkerOutput:
        """Prewarm, then (if given) ask ``get_epoch`` for the epoch, then run the plan."""
        plan, loop = self.plan, asyncio.get_running_loop()
        if plan.handle_sigint:
            loop.add_signal_handler(signal.SIGINT, self.interrupt)
        gc_was_on = gc.isenabled()
        try:
            gc.collect()
            gc.freeze()  # what exists now is never scanned again
            gc.disable()  # a full collection over thousands of live timelines stalls the loop
            await self._prewarm()
            if get_epoch is not None:
                plan.epoch = await get_epoch()
            lag_task = loop.create_task(self._monitor())
            cpu0, wall0 = time.process_time(), time.monotonic()
            if plan.mode == "closed":
                await self._closed(iter(plan.jobs), plan.concurrency or 1, record=True)
            else:
                await self._open()
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            self.stop.set()
            await lag_task
        finally:
            gc.unfreeze()
            if gc_was_on:
                gc.enable()
            await self.client.close()
            if plan.handle_sigint:
                loop.remove_signal_handler(signal.SIGINT)
        records = [finalize(ex, plan.epoch, keep_text=plan.keep_text) for ex in self.exchanges]
        return WorkerOutput(
            plan.worker, records, self.lag, cpu, wall, self.interrupted, cpu_wait_s=self.cpu_wait
        )

    async def _prewarm(self) -> None:
        """Open the connection pool (and run the client's code paths once) before the epoch:
        ``GET /v1/models`` on ``prewarm`` concurrent connections; failures are left to the run."""
        probe = self.backend.probe_request(self.client)
        await self.client.prewarm(self.plan.prewarm, probe)

    def interrupt(self) -> None:
        self.interrupted = True
        self.stop.set()

    def _over(self) -> bool:
        p = self.plan
        return self.stop.is_set() or (
            p.duration_s is not None and time.monotonic() > p.epoch + p.duration_s
        )

    async def _monitor(self) -> None:
        clock, waited = time.monotonic, cpu_wait()
        if waited is None:
            self.cpu_wait = None
        while not self.stop.is_set():
            await asyncio.sleep(LAG_INTERVAL_S)
            t0 = clock()
            await asyncio.sleep(0)
            self.lag.append(clock() - t0)
            if waited is not None and self.cpu_wait is not None:
                now = cpu_wait()
                if now is not None and now[1] > waited[1]:
                    self.cpu_wait.append((now[0] - waited[0]) / (now[1] - waited[1]))
                    waited = now

    async def _open(self) -> None:
        loop, clock, epoch = asyncio.get_running_loop(), time.monotonic, self.plan.epoch
        if self.plan.concurrency:
            self.sem = asyncio.Semaphore(self.plan.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        behind = 0
        for job in self.plan.jobs:
            due = epoch + (job.offset or 0.0)
            delay = due - clock()
            if delay > 0:
                behind = 0
                while delay > 0 and not self.stop.is_set():  # absolute target, no drift
                    await asyncio.sleep(min(delay, 0.25))
                    delay = due - clock()
            else:
                behind += 1
                if behind % 8 == 0:  # catching up: let started requests run
                    await asyncio.sleep(0)
            if self._over():
                break
            task = loop.create_task(self._job(job, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await self._drain(tasks)

    async def _drain(self, tasks: set[asyncio.Task[None]]) -> None:
        if not tasks:
            return
        waiter = asyncio.ensure_future(asyncio.wait(set(tasks)))
        stopper = asyncio.ensure_future(self.stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if self.interrupted:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await waiter
        stopper.cancel()

    async def _closed(self, jobs: Iterator[Job], n: int, *, record: bool) -> None:
        async def slot() -> None:
            for job in jobs:
                if (record and self._over()) or self.interrupted:
                    return
                await self._job(job, None, record=record)

        tasks = {asyncio.ensure_future(slot()) for _ in range(n)}
        await self._drain(tasks)

    async def _job(self, job: Job, due: float | None, *, record: bool = True) -> None:
        ex = Exchange(job.index, due, time.monotonic(), worker=self.plan.worker)
        ex.prompt_tokens, ex.max_tokens = job.item.prompt_tokens, job.item.max_tokens
        if job.item.turns:
            await self._conversation(job, ex, record)
            return
        if record:
            self.exchanges.append(ex)
        assert job.body is not None
        request = self.backend.request(self.client, job.body)
        try:
            if self.sem is not None:
                async with self.sem:
                    await self.client.send(request, ex)
            else:
                await self.client.send(request, ex)
        except asyncio.CancelledError:
            ex.error = ex.error or "cancelled"

    async def _conversation(self, job: Job, first: Exchange, record: bool) -> None:
        messages: list[dict[str, str]] = []
        ex = first
        n = len(job.item.turns)
        for k, user in enumerate(job.item.turns):
            ex.conversation, ex.turn, ex.index = job.index, k, job.index * n + k
            messages.append({"role": "user", "content": user})
            if record:
                self.exchanges.append(ex)
            try:
                body = self.backend.payload(job.item, messages)
                await self.client.send(self.backend.request(self.client, body), ex)
            except asyncio.CancelledError:
                return
            if ex.error or ex.status != 200 or self._over():
                return
            reply = "".join(c.text for c in parse_stream(ex.reads).chunks)
            messages.append({"role": "assistant", "content": reply})
            due = time.monotonic() + self.plan.think_time_s
            if self.plan.think_time_s:
                await asyncio.sleep(self.plan.think_time_s)
            ex = Exchange(job.index, due, time.monotonic(), worker=self.plan.worker)
            ex.prompt_tokens, ex.max_tokens = None, job.item.max_tokens


def run_worker(
    plan: WorkerPlan, get_epoch: Callable[[], Awaitable[float]] | None = None
) -> WorkerOutput:
    """Run one plan in a fresh event loop."""
    return precise.run(ClientLoop(plan).run(get_epoch))
