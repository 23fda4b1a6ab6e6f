"""What an Ascend host says about itself: ``npu-smi info``, ``hccn_tool -i N -link -g``, the CANN
toolkit's and the driver's version files -- read through a :class:`HostProbe` so tests replay
recorded outputs. Only parsing here; ``host.py`` judges the facts against a plan.

Formats (recorded examples in tests/data/host/README.md):
- ``npu-smi info``: a box table, two lines per chip; A2 prints ``| 0  910B3 | OK | ...`` then
  ``| 0  | 0000:C1:00.0 | 0  0 / 0  3378 / 65536 |``; A3 adds a Phy-ID column and one line pair
  per die. HBM is the last ``used / total`` pair, in MiB. A process table follows.
- ``hccn_tool -i N -link -g`` prints ``link status: UP`` (or ``DOWN``).
- ``<toolkit>/<arch>-linux/ascend_toolkit_install.info`` and ``driver/version.info`` are
  ``key=value`` lines; the toolkit's ``version.cfg`` has ``toolkit_running_version=[inner:CANN]``.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

COMMAND_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str = ""


class HostProbe(Protocol):
    """How host.py reads the machine. ``run`` returns None when the command is not installed;
    ``read`` returns None when the file does not exist or cannot be read."""

    def run(self, argv: Sequence[str]) -> Completed | None: ...

    def read(self, path: str) -> str | None: ...

    def env(self, name: str) -> str | None: ...

    def machine(self) -> str: ...


class SystemProbe:
    """This machine: commands from PATH or the driver's usual places (``fallbacks``)."""

    def __init__(self, fallbacks: dict[str, list[str]] | None = None) -> None:
        self.fallbacks = fallbacks or {}

    def _resolve(self, name: str) -> str | None:
        found = shutil.which(name)
        if found:
            return found
        return next((p for p in self.fallbacks.get(name, []) if os.access(p, os.X_OK)), None)

    def run(self, argv: Sequence[str]) -> Completed | None:
        exe = self._resolve(argv[0])
        if exe is None:
            return None
        try:
            done = subprocess.run(  # a fixed argv, no shell
                [exe, *argv[1:]],
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Completed(124, "", f"{argv[0]} did not answer in {COMMAND_TIMEOUT_S:.0f} s")
        except OSError as exc:
            return Completed(126, "", str(exc))
        return Completed(done.returncode, done.stdout, done.stderr)

    def read(self, path: str) -> str | None:
        try:
            return Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    def env(self, name: str) -> str | None:
        return os.environ.get(name) or None

    def machine(self) -> str:
        return platform.machine()


# --- npu-smi info --------------------------------------------------------------------------


class NpuChip(BaseModel):
    """One device as vLLM sees it (a chip; an A3 die)."""

    npu: int = Field(description="npu-smi's NPU id")
    chip: int = Field(description="chip within the NPU (0 on A2; 0 and 1 on A3)")
    phy_id: int | None = Field(None, description="Phy-ID column (A3), the id hccn_tool takes")
    name: str
    health: str
    bus_id: str | None = None
    hbm_used_mib: int | None = None
    hbm_total_mib: int | None = None

    @property
    def device_id(self) -> int:
        """The id ``hccn_tool -i`` and ASCEND_RT_VISIBLE_DEVICES use."""
        return self.phy_id if self.phy_id is not None else self.npu

    @property
    def hbm_free_mib(self) -> int | None:
        if self.hbm_used_mib is None or self.hbm_total_mib is None:
            return None
        return self.hbm_total_mib - self.hbm_used_mib


class NpuProcess(BaseModel):
    npu: int
    chip: int
    pid: int
    name: str
    memory_mib: int


class NpuSmi(BaseModel):
    version: str | None = Field(None, description="npu-smi's (= the driver's) version")
    chips: list[NpuChip] = Field(default_factory=list)
    processes: list[NpuProcess] = Field(default_factory=list)


_HEADER = re.compile(r"npu-smi\s+(\S+)\s+Version:\s*(\S+)")
_PAIR = re.compile(r"(\d+)\s*/\s*(\d+)")
_BUS = re.compile(r"^[0-9A-Fa-f]{4}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d$")
_HEAD_CELL = re.compile(r"^(\d+)\s+(\S+)$")
_CHIP_CELL = re.compile(r"^(\d+)(?:\s+(\d+))?$")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_npu_smi(text: str) -> NpuSmi:
    out = NpuSmi()
    if m := _HEADER.search(text):
        out.version = m[2]
    head: tuple[int, str, str] | None = None
    in_processes = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith("|"):
            continue
        if "Process id" in line:
            in_processes = True
            continue
        cells = _cells(line)
        if in_processes:  # | NPU  Chip | Process id | Process name | Process memory(MB) |
            ids = cells[0].split()
            if len(cells) == 4 and ids and all(c.isdigit() for c in (*ids, cells[1])):
                memory = re.match(r"\d+", cells[3])
                out.processes.append(
                    NpuProcess(
                        npu=int(ids[0]),
                        chip=int(ids[1]) if len(ids) > 1 else 0,
                        pid=int(cells[1]),
                        name=cells[2],
                        memory_mib=int(memory[0]) if memory else 0,
                    )
                )
            continue
        if len(cells) != 3:
            continue
        if (m := _HEAD_CELL.match(cells[0])) and not _BUS.match(cells[1]):
            head = (int(m[1]), m[2], cells[1])
        elif head is not None and (c := _CHIP_CELL.match(cells[0])) and _BUS.match(cells[1]):
            pairs = _PAIR.findall(cells[2])
            used, total = (int(pairs[-1][0]), int(pairs[-1][1])) if pairs else (None, None)
            out.chips.append(
                NpuChip(
                    npu=head[0],
                    name=head[1],
                    health=head[2],
                    chip=int(c[1]),
                    phy_id=int(c[2]) if c[2] is not None else None,
                    bus_id=cells[1],
                    hbm_used_mib=used,
                    hbm_total_mib=total,
                )
            )
            head = None
    return out


# --- hccn_tool, version files ----------------------------------------------------------------

_LINK = re.compile(r"link status:\s*(\w+)", re.IGNORECASE)


def parse_link(text: str) -> str | None:
    """``UP`` / ``DOWN`` from ``hccn_tool -i N -link -g``, None when the output has no status."""
    m = _LINK.search(text)
    return m[1].upper() if m else None


def key_values(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.lstrip().startswith("#"):
            out.setdefault(key.strip(), value.strip().strip('"'))
    return out


def toolkit_version(text: str) -> str | None:
    """CANN from ``ascend_toolkit_install.info`` (``version=8.2.RC1``) or ``version.cfg``
    (``toolkit_running_version=[7.6.0.1.220:8.0.0]`` -> 8.0.0)."""
    kv = key_values(text)
    if kv.get("version"):
        return kv["version"]
    running = kv.get("toolkit_running_version", "").strip("[]")
    return running.rpartition(":")[2] or None


def driver_version(text: str) -> str | None:
    """The HDK driver from ``driver/version.info``: ``package_version``, else ``Version``."""
    kv = key_values(text)
    return kv.get("package_version") or kv.get("Version") or None


# --- version order ---------------------------------------------------------------------------

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(.+))?$", re.IGNORECASE)
_WORD = re.compile(r"^(alpha|beta|rc|t)(\d*)$", re.IGNORECASE)
_PRE = {"t": 0, "alpha": 1, "beta": 2, "rc": 3}

VersionKey = tuple[int, int, tuple[tuple[int, ...], ...]]


def version_key(text: str) -> VersionKey | None:
    """An order for CANN (``8.0.RC1`` < ``8.0.0`` < ``8.5.1``, ``9.1.0-beta.1`` < ``9.1.0``) and
    HDK driver versions (``25.0.rc1`` < ``25.0.rc1.1`` < ``25.0.0``); None when unreadable."""
    m = _VERSION.match(text.strip())
    if not m:
        return None
    parts: list[tuple[int, ...]] = []
    for token in re.split(r"[.\-_]", m[3] or ""):
        if not token:
            continue
        if token.isdigit():
            parts.append((2, int(token)))
        elif w := _WORD.match(token):
            parts.append((0, _PRE[w[1].lower()], int(w[2] or 0)))
        else:
            return None
    # a release candidate stands for the patch it precedes: 8.0.RC1 < 8.0.0
    if parts and parts[0][0] == 0:
        parts.insert(0, (2, 0))
    parts.append((1,))  # the end sorts after a pre-release tag and before a further number
    return int(m[1]), int(m[2]), tuple(parts)
