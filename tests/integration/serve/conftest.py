"""Fixtures for the serve tests: a fake ``vllm`` package (the stand-in engine) on PYTHONPATH."""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

FAKE_SERVER = Path(__file__).with_name("fake_vllm_server.py")


@pytest.fixture(scope="session")
def fake_vllm_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ``vllm/entrypoints/openai/api_server.py`` = the fake server. Regular
    packages (with ``__init__.py``): a namespace package would lose to an installed vLLM."""
    root = tmp_path_factory.mktemp("fakevllm")
    target = root / "vllm" / "entrypoints" / "openai"
    target.mkdir(parents=True)
    for package in (root / "vllm", target.parent, target):
        (package / "__init__.py").write_text("")
    shutil.copy(FAKE_SERVER, target / "api_server.py")
    return root


@pytest.fixture
def fake_vllm(
    fake_vllm_root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Path]:
    """PYTHONPATH points at the fake vllm; FAKE_VLLM_PIDS collects the fake's pids. Yields the
    pid file. Any fake process still alive afterwards is a test failure (and is killed)."""
    import os
    import signal

    pids = tmp_path / "pids.txt"
    monkeypatch.setenv("PYTHONPATH", str(fake_vllm_root))
    monkeypatch.setenv("FAKE_VLLM_PIDS", str(pids))
    monkeypatch.setenv("ADAPTGATE_VLLM_PYTHON", sys.executable)
    yield pids
    alive = [p for p in read_pids(pids) if pid_alive(p)]
    for p in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    assert not alive, f"fake engine processes left behind: {alive}"


def read_pids(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [int(x) for x in path.read_text().split()]


def pid_alive(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


@pytest.fixture(scope="session")
def tiny_bf16(tiny_model) -> Path:  # type: ignore[no-untyped-def]
    path: Path = tiny_model(arch="qwen3", format="bf16")
    return path
