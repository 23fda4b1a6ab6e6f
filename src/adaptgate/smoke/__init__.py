"""Smoke checks on a served endpoint, like a careful user: protocol checks (any correct server
passes them, whatever its weights) apart from model-quality checks.

``run_smoke(SmokeOptions(url=...)) -> SmokeResult``; ``SmokeGate`` (gate.py) for the pipeline.
Requests go through :mod:`adaptgate.client`; the API key comes from an environment variable
and is never stored.
"""

from __future__ import annotations

from adaptgate.errors import ServerUnreachable
from adaptgate.smoke.models import CheckResult, CheckStatus, SmokeOptions, SmokeResult
from adaptgate.smoke.runner import run_smoke

__all__ = [
    "CheckResult",
    "CheckStatus",
    "ServerUnreachable",
    "SmokeOptions",
    "SmokeResult",
    "run_smoke",
]
