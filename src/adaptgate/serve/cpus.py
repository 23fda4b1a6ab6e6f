"""Which CPUs a vLLM server that adaptgate starts on this host gets, and which the benchmark
client keeps for itself.

vLLM's CPU build keeps a core busy; a client that shares a CPU with any vLLM process (API
server, engine core or worker) waits for it and measures its own queueing. On a host with two or
more CPUs the server gets all but the last CPU this process may use and the client the last one
(the worker's OpenMP threads bound to the server's CPUs with VLLM_CPU_OMP_THREADS_BIND).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

OMP_BIND_ENV = "VLLM_CPU_OMP_THREADS_BIND"


@dataclass(frozen=True)
class CpuSplit:
    server: tuple[int, ...]
    client: tuple[int, ...]


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity mask), sorted."""
    return sorted(os.sched_getaffinity(0))


def split_cpus(cpus: list[int] | None = None) -> CpuSplit | None:
    """Server on all but the last CPU, client on the last; None with fewer than two CPUs."""
    cpus = sorted(cpus if cpus is not None else usable_cpus())
    if len(cpus) < 2:
        return None
    return CpuSplit(server=tuple(cpus[:-1]), client=(cpus[-1],))


def cpu_list(cpus: tuple[int, ...] | list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"``: the list syntax of taskset and VLLM_CPU_OMP_THREADS_BIND."""
    ordered = sorted(set(cpus))
    parts: list[str] = []
    start = prev = ordered[0] if ordered else 0
    for cpu in [*ordered[1:], None]:
        if cpu is not None and cpu == prev + 1:
            prev = cpu
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if cpu is not None:
            start = prev = cpu
    return ",".join(parts) if ordered else ""


def parse_cpu_list(text: str) -> list[int]:
    """``"0-2,5"`` -> ``[0, 1, 2, 5]``; ValueError on anything else."""
    cpus: set[int] = set()
    for raw in text.split(","):
        part = raw.strip()
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"{text!r} is not a CPU list such as 0-2,5")
        first, last = int(lo), int(hi) if sep else int(lo)
        if last < first:
            raise ValueError(f"{part!r}: the range runs backwards")
        cpus.update(range(first, last + 1))
    return sorted(cpus)
