"""PNG plots (matplotlib, imported lazily): TTFT/TPOT distributions, a request timeline, and the
latency-versus-throughput curve of a sweep. Each is rendered from saved results."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adaptgate.bench.metrics import itls_ms, tpot_ms
from adaptgate.bench.models import SweepResult
from adaptgate.bench.timeline import RequestRecord


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def distributions(records: Sequence[RequestRecord], path: Path) -> Path:
    plt = _plt()
    ok = [r for r in records if r.ok]
    ttft = [
        (r.first_token_at - r.sent_at) * 1000
        for r in ok
        if r.first_token_at is not None and r.sent_at is not None
    ]
    tpot = [v for r in ok if (v := tpot_ms(r)) is not None]
    itl = [v for r in ok for v in itls_ms(r)]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, values, title in zip(axes, (ttft, tpot, itl), ("TTFT", "TPOT", "ITL"), strict=True):
        if values:
            ax.hist(values, bins=60, color="#4472c4")
        ax.set_title(f"{title} (ms), n={len(values)}")
        ax.set_xlabel("ms")
    axes[0].set_ylabel("requests")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def timeline(records: Sequence[RequestRecord], path: Path, limit: int = 400) -> Path:
    """One bar per request: queue (grey), waiting for the first token (orange), decoding (blue);
    failures in red."""
    plt = _plt()
    rows = [r for r in records if r.sent_at is not None][:limit]
    fig, ax = plt.subplots(figsize=(11, max(3.0, min(12.0, len(rows) * 0.03))))
    for y, r in enumerate(rows):
        sent = r.sent_at or 0.0
        if r.scheduled_at is not None and sent > r.scheduled_at:
            ax.plot([r.scheduled_at, sent], [y, y], color="#bbbbbb", lw=1)
        if not r.ok:
            ax.plot([sent, r.end_at or sent], [y, y], color="#d62728", lw=1.5)
            continue
        first = r.first_token_at or sent
        ax.plot([sent, first], [y, y], color="#ff7f0e", lw=1.5)
        ax.plot([first, r.last_token_at or first], [y, y], color="#1f77b4", lw=1.5)
    ax.set_xlabel("seconds from the run epoch")
    ax.set_ylabel("request")
    ax.set_title(
        "request timeline: queue (grey), to first token (orange), decode (blue), failed (red)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sweep_curve(sweep: SweepResult, path: Path) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, name, title in ((axes[0], "ttft_ms", "TTFT"), (axes[1], "tpot_ms", "TPOT")):
        for stat, style in (("p50", "o-"), ("p99", "s--")):
            xs, ys = [], []
            for run in sweep.runs:
                value = getattr(getattr(run.metrics, name), stat)
                if value is not None:
                    xs.append(run.metrics.output_throughput)
                    ys.append(value)
            ax.plot(xs, ys, style, label=stat)
        for run in sweep.runs:
            if run.validity.status != "VALID":
                ax.axvline(run.metrics.output_throughput, color="#d62728", alpha=0.3)
        ax.set_xlabel("output throughput (tok/s)")
        ax.set_ylabel(f"{title} (ms)")
        ax.set_title(f"{title} vs throughput (red lines: INVALID runs)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(out_dir: Path, records: Sequence[RequestRecord]) -> list[Path]:
    try:
        return [
            distributions(records, out_dir / "distributions.png"),
            timeline(records, out_dir / "timeline.png"),
        ]
    except ImportError:
        return []
