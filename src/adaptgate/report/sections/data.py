"""The report's data files (report/data/*.yaml): links, scheme mapping, troubleshooting."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

from adaptgate.inspect.models import InspectResult
from adaptgate.report.view import RunView
from adaptgate.serve.models import ServeGateResult


@cache
def load(name: str) -> dict[str, Any]:
    text = resources.files("adaptgate.report").joinpath(f"data/{name}.yaml").read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def platform(target: str) -> str:
    """ascend-a2 / ascend-a3 / ascend-a5 -> ascend; cpu, cuda as they are."""
    return "ascend" if target.startswith("ascend") else target


def inspect_result(run: RunView) -> InspectResult | None:
    return run.result("inspect", InspectResult)


def serve_result(run: RunView) -> ServeGateResult | None:
    gate = next(iter(run.gates_of("serve")), None)
    return run.result(gate.name, ServeGateResult) if gate is not None else None


def release(run: RunView) -> str | None:
    """The engine release run.json records: inspect's support check, else serve's plan."""
    inspect, serve = inspect_result(run), serve_result(run)
    value = (inspect.support.release if inspect and inspect.support else None) or (
        serve.plan.release if serve else None
    )
    return value or None
