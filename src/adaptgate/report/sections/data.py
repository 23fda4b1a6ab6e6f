"""The report's data files (report/data/*.yaml): links, scheme mapping, troubleshooting."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

from adaptgate.report.sections.base import get
from adaptgate.report.view import RunView


@cache
def load(name: str) -> dict[str, Any]:
    text = resources.files("adaptgate.report").joinpath(f"data/{name}.yaml").read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def platform(target: str) -> str:
    """ascend-a2 / ascend-a3 / ascend-a5 -> ascend; cpu, cuda as they are."""
    return "ascend" if target.startswith("ascend") else target


def inspect_result(run: RunView) -> dict[str, Any]:
    gate = run.gate("inspect")
    return gate.result if gate is not None and gate.result else {}


def serve_result(run: RunView) -> dict[str, Any]:
    gate = next(iter(run.gates_of("serve")), None)
    return gate.result if gate is not None and gate.result else {}


def release(run: RunView) -> str | None:
    """The engine release run.json records: inspect's support check, else serve's plan."""
    value = get(inspect_result(run), "support.release") or get(serve_result(run), "plan.release")
    return str(value) if value else None
