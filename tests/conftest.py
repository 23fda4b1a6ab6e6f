"""Session fixtures shared by every test suite."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tiny_model(arch="qwen3", format="bf16", **spec_kwargs) -> Path``: a demo checkpoint
    built once per distinct spec in this session (see ``adaptgate.demo.DemoSpec`` for the
    options: shards, seed, scale_dtype, block, ue8m0, non_divisible, tie_embeddings,
    modules_to_not_convert, num_layers). Treat the directory as read-only: it is shared."""
    cache: dict[str, Path] = {}

    def build(arch: str = "qwen3", format: str = "bf16", **spec_kwargs: Any) -> Path:
        from adaptgate.demo import make_model
        from adaptgate.demo.spec import make_spec

        spec = make_spec(arch=arch, format=format, **spec_kwargs)
        key = spec.model_dump_json()
        if key not in cache:
            root = tmp_path_factory.mktemp(f"tiny-{arch}-{format}")
            cache[key] = make_model(root / "model", spec)
        return cache[key]

    return build


@pytest.fixture(scope="session")
def adaptgate_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``adaptgate_cli(*args, cwd=Path) -> CompletedProcess``: the real CLI in a subprocess of
    this interpreter (text output captured, never raises on a non-zero exit)."""

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "ADAPTGATE_DEBUG"}
        return subprocess.run(
            [sys.executable, "-m", "adaptgate.cli.main", *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env,
            check=False,
        )

    return run


@pytest.fixture(scope="session")
def vllm_python() -> str:
    """The interpreter with the real vLLM CPU build: ADAPTGATE_VLLM_PYTHON, else this one (where
    ``make`` installs it). Without it a real-engine test skips with the reason -- and fails in CI
    (CI=true), where ``make`` must have installed it."""
    import platform

    from adaptgate.serve.gate import python_has_vllm

    python = os.environ.get("ADAPTGATE_VLLM_PYTHON") or sys.executable
    if python_has_vllm(python):
        return python
    why = f"{python} cannot import vllm (`make setup` installs the vLLM CPU build into .venv)"
    if os.environ.get("CI") == "true" and platform.machine() == "x86_64":
        pytest.fail(f"CI: {why}")
    pytest.skip(why)
