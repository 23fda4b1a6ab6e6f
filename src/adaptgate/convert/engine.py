"""The streaming converter: plan, validate, write ``OUT.partial/`` shard by shard, rename.

Jobs go to a thread pool in plan order with a bounded number in flight (memory stays at a few
tensors per worker); each job reads its source bytes, computes and writes at planned offsets.
A shard whose jobs are all done is fsynced, renamed from ``.incomplete`` and marked done, so a
rerun after a kill reuses it. The source is only ever read.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from adaptgate.checkpoint import Checkpoint, open_checkpoint
from adaptgate.console import Output, progress
from adaptgate.convert.files import write_model_files
from adaptgate.convert.io import ShardWriter
from adaptgate.convert.layout import shard_header
from adaptgate.convert.models import (
    ConversionPlan,
    ConversionResult,
    ConvertOptions,
    SourceHash,
    TensorPlan,
    VerifyReport,
)
from adaptgate.convert.plan import plan_conversion
from adaptgate.convert.record import error_stats, tensor_records
from adaptgate.convert.source import Sources
from adaptgate.convert.state import INCOMPLETE, ConvertState, ShardDone
from adaptgate.convert.validate import check_disk_space, check_scales
from adaptgate.convert.work import TensorStats, Worker
from adaptgate.errors import OutputExists
from adaptgate.messages import said

RECORD_FILE = "conversion.json"


def jobs_of(plan: ConversionPlan) -> list[list[TensorPlan]]:
    """The plan's tensors grouped by source tensor (a quantized weight and its scale/offset)."""
    jobs: dict[str, list[TensorPlan]] = {}
    for t in plan.tensors:
        jobs.setdefault(t.source, []).append(t)
    return list(jobs.values())


def _check_paths(ckpt: Checkpoint, opts: ConvertOptions) -> None:
    out = opts.out.resolve()
    root = Path(ckpt.root).resolve()
    if out == root or root in out.parents or out in root.parents:
        raise OutputExists(
            f"output {opts.out} overlaps the source {ckpt.root}",
            fix="write the converted model to a directory outside the source",
        )
    if opts.out.exists() and (not opts.out.is_dir() or any(opts.out.iterdir())):
        raise OutputExists(
            f"{opts.out} already exists",
            fix="remove it or choose another output directory",
        )


class _Run:
    """One execution of the plan's remaining shards."""

    def __init__(
        self,
        plan: ConversionPlan,
        opts: ConvertOptions,
        state: ConvertState,
        kept: dict[str, ShardDone],
    ) -> None:
        self.plan, self.opts, self.state = plan, opts, state
        self.todo = [s for s in plan.shards if s.file not in kept]
        self.writers: dict[str, ShardWriter] = {}
        self.remaining: dict[str, int] = {}
        self.stats: dict[str, dict[str, TensorStats]] = defaultdict(dict)
        self.lock = threading.Lock()

    def open_shard(self, file: str) -> None:
        shard = next(s for s in self.plan.shards if s.file == file)
        path = self.opts.partial / (file + INCOMPLETE)
        writer = ShardWriter(path, shard.size, direct=self.opts.direct_io)
        by_name = self.plan.by_name()
        writer.write_at(0, memoryview(shard_header([by_name[n] for n in shard.tensors])))
        self.writers[file] = writer
        self.remaining[file] = len(shard.tensors)

    def finish_shard(self, file: str) -> None:
        writer = self.writers.pop(file)
        writer.close(sync=self.opts.fsync)
        final = self.opts.partial / file
        (self.opts.partial / (file + INCOMPLETE)).replace(final)
        size = final.stat().st_size
        from adaptgate.formats.kernels import checksum_algorithm

        done = ShardDone(
            file=file, size=size, checksum=checksum_algorithm(), tensors=self.stats.pop(file)
        )
        self.state.mark_done(done)

    def execute(self, sources: Sources, workers: int, bar_advance: object) -> None:
        todo_files = {s.file for s in self.todo}
        jobs = [j for j in jobs_of(self.plan) if j[0].shard in todo_files]
        worker = Worker(self.plan, sources, self.writers)
        limit = workers * 2
        pending: dict[Future[dict[str, TensorStats]], list[TensorPlan]] = {}
        with ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="adaptgate-convert"
        ) as pool:
            try:
                for job in jobs:
                    if job[0].shard not in self.writers:
                        self.open_shard(job[0].shard)
                    while len(pending) >= limit:
                        self._collect(pending, bar_advance)
                    pending[pool.submit(worker.run, job)] = job
                while pending:
                    self._collect(pending, bar_advance)
            except BaseException:
                for fut in pending:
                    fut.cancel()
                for writer in self.writers.values():
                    writer.close(sync=False)
                raise

    def _collect(
        self, pending: dict[Future[dict[str, TensorStats]], list[TensorPlan]], bar_advance: object
    ) -> None:
        done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        for fut in done:
            job = pending.pop(fut)
            result = fut.result()  # re-raises the worker's error
            shard = job[0].shard
            self.stats[shard].update(result)
            self.remaining[shard] -= len(job)
            assert callable(bar_advance)
            bar_advance(sum(t.nbytes for t in job))
            if self.remaining[shard] == 0:
                self.finish_shard(shard)


def run_conversion(opts: ConvertOptions, out: Output | None = None) -> ConversionResult:
    """Converts ``opts.model`` into ``opts.out``; returns (and writes) the conversion record."""
    out = out or Output()
    started = time.perf_counter()
    ckpt = open_checkpoint(opts.model)
    _check_paths(ckpt, opts)
    plan = plan_conversion(ckpt, opts.target, max_shard_size=opts.max_shard_size, fmt=opts.format)
    from adaptgate.convert.scheme import read_scheme

    ue8m0 = read_scheme(ckpt.config, ckpt.tensors, ckpt.quant_description).ue8m0
    plan.warnings += check_scales(ckpt, plan, ue8m0=ue8m0)
    workers = opts.worker_count
    state = ConvertState(opts.partial)
    # before anything is created; shards already in OUT.partial count as written
    present = sum(p.stat().st_size for p in opts.partial.glob("*.safetensors*"))
    check_disk_space(opts.partial, max(0, plan.output_bytes - present))
    kept = state.prepare(plan)
    if kept:
        out.status(f"resuming: {len(kept)} of {len(plan.shards)} shards already done and verified")
    run = _Run(plan, opts, state, kept)
    todo_bytes = sum(s.data_size for s in run.todo)
    sources = Sources(ckpt, digest=opts.hash_sources, direct=opts.direct_io)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # parallel across jobs; intra-op threads only oversubscribe
    try:
        with progress(todo_bytes, f"convert -> {opts.target.value}", unit="bytes") as bar:
            run.execute(sources, workers, bar.advance)
        digests = sources.hashes()
    finally:
        torch.set_num_threads(threads)
        sources.close()
    written = write_model_files(ckpt, plan, opts.partial)
    done = state.all_done()
    stats = {name: s for d in done.values() for name, s in d.tensors.items()}
    from adaptgate.formats.kernels import checksum_algorithm, kernel_name

    result = ConversionResult(
        source_dir=plan.source_dir,
        output_dir=str(opts.out.resolve()),
        target=opts.target.value,
        format=plan.format.value if plan.format else None,
        source_scheme=plan.source_scheme,
        kernel=kernel_name(),
        checksum=checksum_algorithm(),
        sources=[
            SourceHash(file=f.file, size=f.size, digest=digests.get(f.file)) for f in plan.sources
        ],
        bytes_in=sum(f.size for f in plan.sources),
        bytes_out=plan.output_bytes + sum((opts.partial / f).stat().st_size for f in written),
        seconds=0.0,
        shards=[s.file for s in plan.shards],
        resumed_shards=sorted(kept),
        tensors=tensor_records(plan, stats),
        dropped=plan.dropped,
        warnings=plan.warnings,
        errors=error_stats(plan, stats),
    )
    if result.errors.nonfinite:
        result.warnings.append(said("convert.nonfinite_kept", count=result.errors.nonfinite))
    if result.errors.saturated:
        result.warnings.append(said("convert.clamped", count=result.errors.saturated))
    result.seconds = round(time.perf_counter() - started, 3)
    result.write_json(opts.partial / RECORD_FILE)
    _publish(opts)
    if opts.verify:
        from adaptgate.convert.verify import verify_output

        report: VerifyReport = verify_output(ckpt, plan, opts.out, stats, result.checksum)
        result.verify = report
        result.seconds = round(time.perf_counter() - started, 3)
        result.write_json(opts.out / RECORD_FILE)
    return result


def _publish(opts: ConvertOptions) -> None:
    """``OUT.partial`` becomes ``OUT`` in one rename; the resume state goes afterwards."""
    fd = os.open(opts.partial, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if opts.out.exists():  # an empty directory (checked up front)
        opts.out.rmdir()
    opts.partial.replace(opts.out)
    shutil.rmtree(opts.out / ".convert", ignore_errors=True)
