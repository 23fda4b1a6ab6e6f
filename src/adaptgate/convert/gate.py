"""The convert gate: runs when inspect's route needs a conversion (or when asked).

Route ``bf16`` -> ``--to bf16``, ``w8a8_dynamic`` -> ``--to w8a8-dynamic``; ``native`` needs no
conversion (SKIPPED). Asking explicitly: ``RunSettings.convert_to`` when the run settings carry
it, else the ``ADAPTGATE_CONVERT_TO`` environment variable (bf16, fp16 or w8a8-dynamic). The
converted model goes to ``<run>/convert/model``; ``summary["output_dir"]`` points later gates at
it. A rerun after an interruption resumes the conversion; a finished one is reused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from adaptgate.pipeline.gate import Gate, GateOutcome, RunContext
from adaptgate.pipeline.record import GateStatus

ROUTES = {"bf16": "bf16", "w8a8_dynamic": "w8a8-dynamic"}
ENV = "ADAPTGATE_CONVERT_TO"


def wanted_target(ctx: RunContext) -> tuple[str | None, str]:
    """The target to convert to and why, or None and why not."""
    asked = getattr(ctx.settings, "convert_to", None) or os.environ.get(ENV)
    if asked:
        return str(asked), "asked for"
    inspect = ctx.result_of("inspect")
    if inspect is None:
        return (
            None,
            "inspect did not pass, so no route is known (set ADAPTGATE_CONVERT_TO to force)",
        )
    route = inspect.get("recommended")
    if route in ROUTES:
        return ROUTES[route], f"inspect's route is {route}"
    return None, f"inspect's route is {route or 'none'}: no conversion needed"


def _summary(result: Any) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "target": result.target,
        "output_dir": result.output_dir,
        "bytes_in": result.bytes_in,
        "bytes_out": result.bytes_out,
        "seconds": result.seconds,
        "output_gb_per_s": round(result.output_gb_per_s, 3),
        "shards": len(result.shards),
        "resumed_shards": len(result.resumed_shards),
        "saturated": result.errors.saturated,
        "nonfinite": result.errors.nonfinite,
    }
    if result.errors.int8_rel_error is not None:
        summary["int8_rel_error"] = result.errors.int8_rel_error
        summary["int8_worst_layer"] = result.errors.int8_layers[0].name
    if result.verify is not None:
        summary["verify_problems"] = len(result.verify.problems)
    return summary


def _previous(out_dir: Path, model: str, target: str) -> Any | None:
    """A finished conversion of the same model and target already in the run directory."""
    from pydantic import ValidationError

    from adaptgate.convert.engine import RECORD_FILE
    from adaptgate.convert.record import ConversionResult

    record = out_dir / RECORD_FILE
    if not record.is_file():
        return None
    try:
        result = ConversionResult.model_validate_json(record.read_text(encoding="utf-8"))
    except (ValidationError, ValueError):
        return None
    same = result.target == target and Path(result.source_dir) == Path(model).resolve()
    return result if same and result.verify is not None and result.verify.ok else None


class ConvertGate(Gate):
    name = "convert"
    title = "Convert"

    def run(self, ctx: RunContext) -> GateOutcome:
        from adaptgate.convert.engine import run_conversion
        from adaptgate.convert.models import Target
        from adaptgate.convert.options import ConvertOptions
        from adaptgate.errors import UsageError

        target, why = wanted_target(ctx)
        if target is None:
            return GateOutcome.skipped(why)
        try:
            kind = Target(target)
        except ValueError:
            raise UsageError(
                f"unknown conversion target {target!r}",
                fix=f"use one of: {', '.join(t.value for t in Target)}",
            ) from None
        out_dir = ctx.gate_dir(self.name) / "model"
        model = ctx.settings.model
        result = _previous(out_dir, model, kind.value)
        if result is None:
            if out_dir.exists():  # an unverified or different earlier output: start over
                import shutil

                shutil.rmtree(out_dir)
            options = ConvertOptions(model=model, out=out_dir, target=kind, verify=True)
            result = run_conversion(options, ctx.out)
        record = ctx.gate_dir(self.name) / "conversion.json"
        result.write_json(record)
        summary = _summary(result)
        problems = list(result.verify.problems) if result.verify else []
        if result.errors.nonfinite:
            problems.append(f"{result.errors.nonfinite} NaN/inf FP8 codes in the source weights")
        if result.errors.saturated:
            problems.append(f"{result.errors.saturated} values saturated at the float16 limit")
        if problems:
            return GateOutcome(
                GateStatus.FAIL, f"{why}; " + "; ".join(problems[:3]), summary, result, [record]
            )
        reason = (
            f"{why}: {result.bytes_in / 1e9:.2f} GB -> {result.bytes_out / 1e9:.2f} GB "
            f"{kind.value} in {result.seconds:.1f} s, verified"
        )
        return GateOutcome(GateStatus.PASS, reason, summary, result, [record])
