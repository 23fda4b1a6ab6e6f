"""The interface every gate implements, and the context a run hands it.

A gate is a small class with a ``name``, a ``title`` and ``run(ctx) -> GateOutcome``. It reads
what earlier gates produced through ``ctx`` (``ctx.result_of("inspect", InspectResult)``,
``ctx.model_path``),
writes its files under ``ctx.gate_dir(name)``, and returns its verdict with the measured values.
It never decides the status of another gate. A gate that cannot run returns SKIPPED with the
reason; only measurement yields PASS.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel

from adaptgate.console import Output
from adaptgate.messages import Message, Said, message
from adaptgate.record import GateRecord, GateStatus, RunRecord, RunSettings
from adaptgate.results import Result

M = TypeVar("M", bound=BaseModel)


@dataclass
class GateOutcome:
    status: GateStatus
    reason: str
    summary: dict[str, Any] = field(default_factory=dict)
    result: Result | None = None
    artifacts: list[Path] = field(default_factory=list)
    # the reason as a catalogue message (adaptgate.messages), which the report renders in its
    # language; ``reason`` is then its English text
    reason_id: str | None = None
    reason_params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def said(cls, status: GateStatus, reason: Message | Said, **fields: Any) -> GateOutcome:
        """An outcome whose reason is a catalogue message (a Said joined from messages)."""
        return cls(status, reason.text, reason_id=reason.id, reason_params=reason.params, **fields)

    @classmethod
    def skipped(cls, reason: str | Message) -> GateOutcome:
        if isinstance(reason, Message):
            return cls.said(GateStatus.SKIPPED, reason)
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
        convert = self.passed("convert")
        if convert is not None and convert.summary.get("output_dir"):
            return str(convert.summary["output_dir"])
        return self.settings.model

    def server(self) -> tuple[dict[str, Any] | None, Message]:
        """The serve gate's summary (``url``, ``served_model_name``, ``max_model_len``, ...) of
        the server the endpoint gates use, or None and why there is none (with a server: which
        one)."""
        serve = self.record.gate("serve")
        if serve is None:
            return None, message("gate.no_serve")
        if serve.status is not GateStatus.PASS:
            why = serve.reason_message()
            return None, message("gate.serve_not_passed", status=serve.status.value, reason=why)
        if not serve.summary.get("url"):
            return None, message("gate.serve_no_url")
        return serve.summary, message("gate.server", url=serve.summary["url"])

    def gate_dir(self, name: str) -> Path:
        path = self.run_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def passed(self, name: str) -> GateRecord | None:
        """An earlier gate's record (its ``summary``, ``artifacts``) when it passed, else None."""
        gate = self.record.gate(name)
        return gate if gate is not None and gate.status is GateStatus.PASS else None

    def result_of(self, name: str, model: type[M]) -> M | None:
        """An earlier gate's result as its typed ``model``, or None unless it passed with one.
        A result this version cannot read (a resumed run.json of another version) is a
        RunDirError."""
        gate = self.passed(name)
        return gate.result_as(model) if gate is not None else None


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
