"""Fixtures of the report tests: complete run directories (see report_runs.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from report_runs import make_run_dir


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    """``make_run(name="run", edit=None, source="run_full.json")``: a run directory under
    tmp_path."""

    def build(
        name: str = "run", edit: Callable[..., None] | None = None, source: str = "run_full.json"
    ) -> Path:
        return make_run_dir(tmp_path, name, edit, source)

    return build


@pytest.fixture
def full_run(make_run: Callable[..., Path]) -> Path:
    return make_run()


@pytest.fixture
def cpu_run(make_run: Callable[..., Path]) -> Path:
    return make_run("cpu-run", source="run_cpu.json")


@pytest.fixture
def cpu_bf16_run(make_run: Callable[..., Path]) -> Path:
    return make_run("cpu-bf16-run", source="run_cpu_bf16.json")
