"""What a report is rendered from: one or more runs, each a column of the report's tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from pydantic import BaseModel

from adaptgate.errors import UsageError
from adaptgate.inspect.models import InspectResult
from adaptgate.record import GateRecord, RunRecord

M = TypeVar("M", bound=BaseModel)

# The sections of the seed reports in their order; a gate belongs to the first whose name
# prefixes its own (``serve-dummy`` -> serve). Gates of other names follow, in run order.
GATE_ORDER = ("inspect", "convert", "serve", "smoke", "precision", "accuracy", "kvcache", "bench")
NOT_SHOWN = ("report",)


def section_of(gate_name: str) -> str | None:
    name = gate_name.replace("-", "_")
    return next((s for s in GATE_ORDER if name == s or name.startswith(s + "_")), None)


@dataclass(frozen=True)
class RunView:
    record: RunRecord
    root: Path
    label: str
    _typed: dict[tuple[str, type[BaseModel]], BaseModel | None] = field(
        default_factory=dict, repr=False, compare=False
    )

    def gate(self, name: str) -> GateRecord | None:
        return self.record.gate(name)

    def result(self, name: str, model: type[M]) -> M | None:
        """Gate ``name``'s result as its typed ``model``, validated once per run (None when the
        gate did not run or left none, whatever its status)."""
        key = (name, model)
        if key not in self._typed:
            gate = self.gate(name)
            self._typed[key] = gate.result_as(model) if gate is not None else None
        return cast(M | None, self._typed[key])

    def gates_of(self, section: str) -> list[GateRecord]:
        return [g for g in self.record.gates if section_of(g.name) == section]

    def artifact(self, rel: str) -> Path:
        path = Path(rel)
        return path if path.is_absolute() else self.root / path


def run_label(record: RunRecord) -> str:
    s = record.settings
    where = s.target + (f" {s.device}" if s.device else "")
    if s.devices > 1:
        where += f" x{s.devices}"
    return where


def views(records: list[tuple[RunRecord, Path]]) -> list[RunView]:
    """Column labels unique across runs: target and device, then the host, then the index."""
    labels = [run_label(r) for r, _ in records]
    if len(set(labels)) < len(labels):
        labels = [f"{lab} @ {r.host.hostname}" for lab, (r, _) in zip(labels, records, strict=True)]
    if len(set(labels)) < len(labels):
        labels = [f"{lab} #{i + 1}" for i, lab in enumerate(labels)]
    return [RunView(r, root, lab) for (r, root), lab in zip(records, labels, strict=True)]


def model_identity(record: RunRecord) -> dict[str, Any]:
    """What makes two runs runs of the same model: the architecture and the exact parameter
    count from inspect when it ran, else the model directory's name."""
    inspect = record.gate("inspect")
    result = inspect.result_as(InspectResult) if inspect is not None else None
    if result is not None and result.params is not None:
        return {"architecture": result.facts.architecture, "params": result.params.total}
    return {"name": Path(record.settings.model.rstrip("/")).name}


def _dir_name(record: RunRecord) -> dict[str, Any]:
    return {"name": Path(record.settings.model.rstrip("/")).name}


def check_same_model(records: list[RunRecord]) -> None:
    base = records[0]
    for record in records[1:]:
        a, b = model_identity(base), model_identity(record)
        if set(a) != set(b):  # inspect ran in one of them only: compare the directory names
            a, b = _dir_name(base), _dir_name(record)
        if a != b:
            raise UsageError(
                f"runs of different models cannot be merged: {base.run_dir} is {a}, "
                f"{record.run_dir} is {b}",
                fix="pass runs of one model (on different hardware) to compare them",
            )
