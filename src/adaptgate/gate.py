"""The interface every gate implements, and the context a run hands it.

A gate is a small class with a ``name``, a ``title`` and ``run(ctx) -> GateOutcome``. It reads
what earlier gates produced through ``ctx`` (``ctx.result_of("inspect")``, ``ctx.model_path``),
writes its files under ``ctx.gate_dir(name)``, and returns its verdict with the measured values.
It never decides the status of another gate. A gate that cannot run returns SKIPPED with the
reason; only measurement yields PASS.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from adaptgate.console import Output
from adaptgate.record import GateStatus, RunRecord, RunSettings
from adaptgate.results import Result


@dataclass
class GateOutcome:
    status: GateStatus
    reason: str
    summary: dict[str, Any] = field(default_factory=dict)
    result: Result | None = None
    artifacts: list[Path] = field(default_factory=list)

    @classmethod
    def skipped(cls, reason: str) -> GateOutcome:
        return cls(GateStatus.SKIPPED, reason)


@dataclass
class RunContext:
    run_dir: Path
    settings: RunSettings
    record: RunRecord
    out: Output = field(default_factory=Output)

    @property
    def model_path(self) -> str:
        """The checkpoint later gates work on: the converted one once convert has run."""
        convert = self.record.gate("convert")
        if convert and convert.status is GateStatus.PASS and convert.summary.get("output_dir"):
            return str(convert.summary["output_dir"])
        return self.settings.model

    def server(self) -> tuple[dict[str, Any] | None, str]:
        """The serve gate's summary (``url``, ``served_model_name``, ``max_model_len``, ...) of
        the server the endpoint gates use, or None and why there is none."""
        serve = self.record.gate("serve")
        if serve is None:
            return None, "the serve gate did not run: no server"
        if serve.status is not GateStatus.PASS:
            return None, f"serve did not pass, so no server ({serve.status.value}: {serve.reason})"
        if not serve.summary.get("url"):
            return None, "the serve gate recorded no server URL"
        return serve.summary, ""

    def gate_dir(self, name: str) -> Path:
        path = self.run_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def result_of(self, name: str) -> dict[str, Any] | None:
        """An earlier gate's full result JSON ({} if it had none), or None unless it passed."""
        gate = self.record.gate(name)
        if gate is None or gate.status is not GateStatus.PASS:
            return None
        return gate.result or {}


class Gate(ABC):
    name: ClassVar[str]
    title: ClassVar[str]
    # Resuming keeps a passed gate, except: ``always`` gates run on every run (the report), and
    # ``live`` gates, whose PASS is a process that died with the earlier run (a served model),
    # run again whenever a gate after them runs.
    always: ClassVar[bool] = False
    live: ClassVar[bool] = False

    @abstractmethod
    def run(self, ctx: RunContext) -> GateOutcome:
        """Measure, decide, write artifacts; raise AdaptgateError for bad input."""

    def close(self) -> None:  # noqa: B027 - a hook: most gates leave nothing running
        """Release what ``run`` left running for the later gates (a served model); the pipeline
        calls it on every gate it ran when the run ends, whatever happened."""
