"""The serve gate: launch plans, a managed vLLM, log diagnosis.

- ``build_plan(PlanOptions) -> LaunchPlan`` (plan.py), rendered by runbook.py
- ``serve_model(ServeOptions) -> (ServeResult, server)`` (api.py), over ``ManagedServer``
  (process.py)
- ``diagnose(log_text) -> Diagnosis`` (doctor.py, knowledge in doctor.yaml)
- ``ServeGate`` (gate.py) for the pipeline

Importing this package imports nothing heavy (no torch, no vllm).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PlanOptions": "adaptgate.serve.models",
    "LaunchPlan": "adaptgate.serve.models",
    "build_plan": "adaptgate.serve.plan",
    "PlanError": "adaptgate.errors",
    "ServeOptions": "adaptgate.serve.api",
    "ServeResult": "adaptgate.serve.api",
    "serve_model": "adaptgate.serve.api",
    "ManagedServer": "adaptgate.serve.process",
    "ServerSpec": "adaptgate.serve.process",
    "stop_all": "adaptgate.serve.process",
    "Diagnosis": "adaptgate.serve.doctor",
    "diagnose": "adaptgate.serve.doctor",
    "diagnose_file": "adaptgate.serve.doctor",
    "write_plan_outputs": "adaptgate.serve.runbook",
    "render_runbook": "adaptgate.serve.runbook",
}

__all__ = [
    "Diagnosis",
    "LaunchPlan",
    "ManagedServer",
    "PlanError",
    "PlanOptions",
    "ServeOptions",
    "ServeResult",
    "ServerSpec",
    "build_plan",
    "diagnose",
    "diagnose_file",
    "render_runbook",
    "serve_model",
    "stop_all",
    "write_plan_outputs",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(name)
    return getattr(importlib.import_module(_EXPORTS[name]), name)
