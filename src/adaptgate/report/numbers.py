"""The only ways the report writes a number.

Every number in a report is one of these renderings of a value in run.json (or in a gate artifact
run.json references). The tests render every run.json value with :data:`FORMATTERS` and check each
number of the report is among the results: a number computed by the report (a ratio, a sum, a
difference) would not be, so it cannot slip in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

GiB = 2**30


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def num(value: Any) -> str:
    """Any value as read: ints with thousands separators from 10,000, floats to 6 significant
    digits; anything else as text."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and abs(value) >= 1e6:
            return f"{value:,.0f}"
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ", ".join(num(v) for v in value)
    return str(value)


def plain(value: Any) -> str:
    """An integer as bare digits (greppable, e.g. ``total_params=2688512``); else :func:`num`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return num(value)


def fixed(value: Any, digits: int = 2) -> str:
    """A float with a fixed number of decimals (latencies in ms, throughputs, seconds)."""
    f = _finite(value)
    return num(value) if f is None else f"{f:,.{digits}f}"


def pct(value: Any) -> str:
    """A fraction (0..1) as a percentage: rates, agreements, shares."""
    f = _finite(value)
    return num(value) if f is None else f"{f * 100:.4g}%"


def size(value: Any) -> str:
    """A byte count: GB/MB (decimal, like the seeds and ``du -h --si``) or bytes when small."""
    f = _finite(value)
    if f is None:
        return num(value)
    if abs(f) >= 1e9:
        return f"{f / 1e9:.2f} GB"
    if abs(f) >= 1e6:
        return f"{f / 1e6:.2f} MB"
    return f"{int(f):,} B"


def gib(value: Any) -> str:
    """A byte count in GiB (device memory, as npu-smi and the memory plan count it)."""
    f = _finite(value)
    return num(value) if f is None else f"{f / GiB:.2f} GiB"


def seconds(value: Any) -> str:
    f = _finite(value)
    return num(value) if f is None else f"{f:.1f} s"


FORMATTERS: tuple[Callable[[Any], str], ...] = (
    num,
    plain,
    fixed,
    lambda v: fixed(v, 1),
    lambda v: fixed(v, 3),
    pct,
    size,
    gib,
    seconds,
)
