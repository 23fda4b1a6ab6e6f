"""The baseline an accuracy is judged against: an accuracy result JSON (``adaptgate accuracy
--json``'s output, or the gate's accuracy.json), or a run directory whose accuracy gate left one."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from adaptgate.accuracy.models import AccuracyResult
from adaptgate.errors import BaselineError
from adaptgate.record import RUN_FILE, load_run

GATE = "accuracy"

_FIX = (
    "pass the JSON `adaptgate accuracy --json` printed, or a run directory whose accuracy gate ran"
)


def load_baseline(path: Path) -> AccuracyResult:
    if path.is_dir():
        if not (path / RUN_FILE).is_file():
            raise BaselineError(f"baseline {path} is a directory without {RUN_FILE}", fix=_FIX)
        gate = load_run(path).gate(GATE)
        result = gate.result_as(AccuracyResult) if gate is not None else None
        if result is None:
            raise BaselineError(f"baseline run {path} holds no accuracy result", fix=_FIX)
        return result
    try:
        return AccuracyResult.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise BaselineError(f"cannot read baseline {path}: {exc.strerror}", fix=_FIX) from None
    except (json.JSONDecodeError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise BaselineError(f"baseline {path} is no accuracy result: {first}", fix=_FIX) from None
