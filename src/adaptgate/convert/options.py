"""What a conversion is asked to do: the typed config the CLI and the gate fill in."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from adaptgate.convert.models import Target
from adaptgate.errors import UsageError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_size(text: str | int) -> int:
    """``"5GB"`` -> 5_000_000_000, ``"500MiB"`` -> 524_288_000 (as Hugging Face reads sizes)."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"cannot read size {text!r}", fix="write it like 5GB, 500MB or 2GiB")
    number, unit = float(match.group(1)), (match.group(2) or "").upper()
    factor = _UNITS[unit[:1]] if "I" not in unit else 1024 ** "KMGT".index(unit[0]) * 1024
    size = int(number * factor)
    if size <= 0:
        raise UsageError(f"size must be positive, got {text!r}")
    return size


@dataclass
class ConvertOptions:
    model: str
    out: Path
    target: Target
    max_shard_size: int = 5 * 10**9
    workers: int | None = None  # default: twice the CPUs (jobs also wait on I/O), 2 to 4
    verify: bool = False
    hash_sources: bool = True  # sha256 of every source file for conversion.json
    direct_io: bool = True  # O_DIRECT writes where the file system takes them
    fsync: bool = True

    @property
    def worker_count(self) -> int:
        if self.workers is not None:
            if self.workers < 1:
                raise UsageError(f"--workers must be at least 1, got {self.workers}")
            return self.workers
        return max(2, min(4, 2 * (os.cpu_count() or 1)))

    @property
    def partial(self) -> Path:
        return self.out.with_name(self.out.name + ".partial")
