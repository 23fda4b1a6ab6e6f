"""The one library call behind ``adaptgate bench``: run (once, or a sweep), write JSON first, then
the renderings. Ctrl-C stops the run and still writes the partial result, marked INVALID."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from adaptgate.bench.models import Attempt, BenchConfig, BenchResult, SweepResult
from adaptgate.bench.outputs import files, plots
from adaptgate.console import Output
from adaptgate.errors import UsageError
from adaptgate.results import write_text_atomic


@dataclass
class BenchOutcome:
    result: BenchResult | SweepResult
    files: list[Path] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        if isinstance(self.result, SweepResult):
            return all(r.valid for r in self.result.runs)
        return self.result.valid


def build_config(data: dict[str, object]) -> BenchConfig:
    """Validate a scenario dict; pydantic's errors become one-line usage errors."""
    try:
        return BenchConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"bad benchmark setting {where}: {first['msg']}") from None


def _run_one(cfg: BenchConfig, out: Output, out_dir: Path | None) -> tuple[BenchResult, list[Path]]:
    """One measurement; an INVALID one is measured again up to ``validity.retries`` times, each
    earlier attempt written to ``attempt-N/`` and listed in the kept result."""
    from adaptgate.bench.runner import run_benchmark

    written: list[Path] = []
    earlier: list[Attempt] = []
    for attempt in range(1, cfg.validity.retries + 2):
        result, records = run_benchmark(cfg, out)
        if result.valid or attempt > cfg.validity.retries:
            break
        sub = out_dir / f"attempt-{attempt}" if out_dir is not None else None
        if sub is not None:
            written += files.write_run(sub, result, records)
        earlier.append(Attempt.of(attempt, result, str(sub) if sub else None))
        out.status(
            f"attempt {attempt} INVALID ({'; '.join(r.text for r in result.validity.reasons)}): "
            "measuring again"
        )
    result.earlier_attempts = earlier
    if out_dir is not None:
        written += files.write_run(out_dir, result, records)
        if cfg.output.plots:
            written += plots.write_plots(out_dir, records)
    return result, written


def run(cfg: BenchConfig, out: Output | None = None) -> BenchOutcome:
    out = out or Output()
    out_dir = cfg.output.dir
    if not (cfg.sweep.rates or cfg.sweep.concurrencies or cfg.sweep.sla_search):
        result, written = _run_one(cfg, out, out_dir)
        return BenchOutcome(result, written)
    from adaptgate.bench.sweep import run_sweep

    written_all: list[Path] = []

    def one(c: BenchConfig) -> BenchResult:
        sub = out_dir / (c.output.label or "run").replace("=", "-") if out_dir else None
        res, written = _run_one(c.model_copy(update={"output": c.output}), out, sub)
        written_all.extend(written)
        out.status(
            f"  {c.output.label}: {res.validity.status}, "
            f"{res.metrics.request_throughput:.2f} req/s, TTFT p99 {res.metrics.ttft_ms.p99}"
        )
        return res

    axis, runs, sla = run_sweep(cfg, one)
    sweep = SweepResult(axis=axis, runs=runs, sla=sla)
    if out_dir is not None:
        path = out_dir / files.SWEEP_FILE
        write_text_atomic(path, sweep.to_json() + "\n")
        written_all += [path, files.write_csv(out_dir / files.CSV_FILE, runs)]
        if cfg.output.plots:
            with contextlib.suppress(ImportError):
                written_all.append(plots.sweep_curve(sweep, out_dir / "sweep.png"))
    return BenchOutcome(sweep, written_all)
