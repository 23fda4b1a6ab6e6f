"""Plots the report draws from run.json values (matplotlib, Agg, imported only when drawing).

Plot text is language-neutral (gate names, metric names, units), so no CJK font is needed; the
caption under each plot is in the report's language. Each function returns PNG bytes, or b""
when there is nothing to draw or matplotlib is not installed.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLOURS = ("#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#718096")
STATUS_COLOURS = {
    "PASS": "#38a169", "FAIL": "#e53e3e", "ERROR": "#e53e3e", "SKIPPED": "#a0aec0",
    "INCONCLUSIVE": "#dd6b20",
}  # fmt: skip


F = TypeVar("F", bound=Callable[..., bytes])


def cached(fn: F) -> F:
    """Plots are language-neutral: a report rendered in two languages draws each one once."""

    @lru_cache(maxsize=32)
    def by_key(key: str) -> bytes:
        return fn(*json.loads(key))

    @wraps(fn)
    def wrapper(*args: Any) -> bytes:
        return by_key(json.dumps(args))

    return wrapper  # type: ignore[return-value]


def _figure(width: float, height: float) -> Figure | None:
    try:  # the Figure API draws with Agg and touches no global pyplot state
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure(figsize=(width, height), dpi=100)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


@cached
def gate_timing(columns: list[tuple[str, list[tuple[str, float, str]]]]) -> bytes:
    """Horizontal bars of seconds per gate, coloured by status; one group per run."""
    bars = [
        (f"{run} / {gate}" if len(columns) > 1 else gate, secs, status)
        for run, gates in columns
        for gate, secs, status in gates
    ]
    if not bars:
        return b""
    fig = _figure(7.5, 0.9 + 0.32 * len(bars))
    if fig is None:
        return b""
    ax = fig.add_subplot()
    names = [b[0] for b in bars][::-1]
    values = [b[1] for b in bars][::-1]
    colours = [STATUS_COLOURS.get(b[2], COLOURS[0]) for b in bars][::-1]
    ax.barh(names, values, color=colours)
    ax.set_xlabel("seconds")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


@cached
def latency_bars(series: list[tuple[str, dict[str, dict[str, float]]]]) -> bytes:
    """Grouped bars: for each latency metric, its mean/p50/p90/p99 per column (run or window)."""
    metrics = [
        m for m in ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms") if any(m in d for _, d in series)
    ]
    if not metrics:
        return b""
    fig = _figure(3.2 * len(metrics), 3.2)
    if fig is None:
        return b""
    axes: Any = fig.subplots(1, len(metrics), squeeze=False)[0]
    stats = ("mean", "p50", "p90", "p99")
    width = 0.8 / max(1, len(series))
    for ax, metric in zip(axes, metrics, strict=True):
        for i, (label, dists) in enumerate(series):
            values = [dists.get(metric, {}).get(s, 0.0) for s in stats]
            xs = [x + i * width for x in range(len(stats))]
            ax.bar(xs, values, width, label=label or "run", color=COLOURS[i % len(COLOURS)])
        ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(stats))], stats)
        ax.set_title(metric.replace("_ms", " (ms)"))
        ax.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        axes[0].legend(fontsize="small")
    return _png(fig)
