"""Arrival schedules: offsets (seconds from the run epoch) at which requests are due.

Offsets are computed once, before the run, and the dispatcher waits for each absolute time;
nothing accumulates the error of relative sleeps, so the delivered rate cannot drift.
"""

from __future__ import annotations

import numpy as np


def arrival_offsets(
    n: int,
    rate: float | None,
    process: str = "poisson",
    *,
    burstiness: float = 1.0,
    seed: int = 0,
) -> list[float]:
    """``n`` arrival offsets starting at 0.

    - ``constant``: every 1/rate seconds.
    - ``poisson``: exponential gaps with mean 1/rate.
    - ``gamma``: gamma gaps with shape ``burstiness`` and mean 1/rate (burstiness < 1 is burstier
      than Poisson, > 1 more regular; 1 is Poisson) -- vllm bench serve's ``--burstiness``.
    - rate None: every request at offset 0 (as fast as the client can send).
    """
    if n <= 0:
        return []
    if rate is None:
        return [0.0] * n
    if process == "constant":
        return [i / rate for i in range(n)]
    rng = np.random.default_rng(seed)
    shape = 1.0 if process == "poisson" else burstiness
    gaps = rng.gamma(shape, 1.0 / (rate * shape), size=n - 1)
    return [0.0, *np.cumsum(gaps).tolist()]


def offsets_for_duration(
    duration_s: float,
    rate: float,
    process: str = "poisson",
    *,
    burstiness: float = 1.0,
    seed: int = 0,
) -> list[float]:
    """All arrivals that fall within ``duration_s`` seconds."""
    n = max(1, int(duration_s * rate * 1.5) + 16)
    while True:
        offsets = arrival_offsets(n, rate, process, burstiness=burstiness, seed=seed)
        if offsets[-1] >= duration_s:
            return [t for t in offsets if t < duration_s]
        n *= 2


def scheduled_rate(offsets: list[float]) -> float | None:
    """The rate the schedule itself asks for: (n - 1) / (last - first)."""
    if len(offsets) < 2 or offsets[-1] <= offsets[0]:
        return None
    return (len(offsets) - 1) / (offsets[-1] - offsets[0])
