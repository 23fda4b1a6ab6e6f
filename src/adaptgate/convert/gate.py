"""The convert gate: runs when inspect's route needs a conversion (or when asked).

Route ``bf16`` -> ``--to bf16``, ``w8a8_dynamic`` -> ``--to w8a8-dynamic``; ``native`` needs no
conversion (SKIPPED). Asking explicitly: ``RunSettings.convert_to`` (``adaptgate run
--convert-to``, else the ``ADAPTGATE_CONVERT_TO`` environment variable, as the run recorded it):
bf16, fp16 or w8a8-dynamic, several comma-separated; ``+w8a8-dynamic`` adds a conversion after
the route's. The first conversion goes to ``<run>/convert/model`` and ``summary["output_dir"]``
points later gates at it; the others go to ``<run>/convert/model-<target>``
(``summary["also"]``). A ``w8a8-dynamic`` output takes the layout the run's target serves:
compressed-tensors on cpu and cuda (vLLM), msModelSlim's on Ascend. A rerun after an
interruption resumes a conversion; a finished one is reused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adaptgate.gate import Gate, GateOutcome, RunContext
from adaptgate.messages import Message, Said, joined, message, said
from adaptgate.record import GateStatus
from adaptgate.settings import CONVERT_TO

ROUTES = {"bf16": "bf16", "w8a8_dynamic": "w8a8-dynamic"}


def wanted_targets(ctx: RunContext) -> tuple[list[str], Message]:
    """The targets to convert to (the first is the one later gates use) and why, or none and
    why not. ``RunSettings.convert_to`` may list several (``bf16,w8a8-dynamic``); with ``+``
    in front (``+w8a8-dynamic``) they come after the route."""
    asked = ctx.settings.convert_to or ""
    extra = asked.startswith("+")
    names = [t.strip() for t in asked.lstrip("+").split(",") if t.strip()]
    if names and not extra:
        return names, message("convert.asked")
    from adaptgate.inspect.models import InspectResult

    inspect = ctx.result_of("inspect", InspectResult)
    if inspect is None:
        return [], message("convert.no_inspect", variable=CONVERT_TO)
    route = inspect.recommended
    if route in ROUTES:
        first = ROUTES[route]
        return [first, *[n for n in names if n != first]], message("convert.route", route=route)
    if names:
        return names, message("convert.asked_not_needed", route=route or "none")
    return [], message("convert.no_route", route=route or "none")


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


def _previous(out_dir: Path, model: str, target: str, fmt: str | None) -> Any | None:
    """A finished conversion of the same model, target and layout already in the run
    directory."""
    from pydantic import ValidationError

    from adaptgate.convert.engine import RECORD_FILE
    from adaptgate.convert.models import ConversionResult

    record = out_dir / RECORD_FILE
    if not record.is_file():
        return None
    try:
        result = ConversionResult.model_validate_json(record.read_text(encoding="utf-8"))
    except (ValidationError, ValueError):
        return None
    same_source = Path(result.source_dir) == Path(model).resolve()
    same = same_source and (result.target, result.format) == (target, fmt)
    return result if same and result.verify is not None and result.verify.ok else None


class ConvertGate(Gate):
    name = "convert"
    title = "Convert"

    def run(self, ctx: RunContext) -> GateOutcome:
        targets, why = wanted_targets(ctx)
        if not targets:
            return GateOutcome.skipped(why)
        kinds = [_target(t) for t in targets]
        results = [
            _convert(ctx, kind, "model" if i == 0 else f"model-{kind.value}")
            for i, kind in enumerate(kinds)
        ]
        records = []
        for result, kind in zip(results, kinds, strict=True):
            name = "conversion.json" if result is results[0] else f"conversion-{kind.value}.json"
            records.append(result.write_json(ctx.gate_dir(self.name) / name))
        summary = _summary(results[0])
        if len(results) > 1:
            summary["also"] = {r.target: _summary(r) for r in results[1:]}
        problems = [p for r in results for p in _problems(r)]
        if problems:
            failed = message("convert.failed", why=why, problems=joined(problems[:3]))
            return GateOutcome.said(
                GateStatus.FAIL, failed, summary=summary, result=results[0], artifacts=records
            )
        done = [
            said(
                "convert.one",
                gb_in=f"{r.bytes_in / 1e9:.2f}",
                gb_out=f"{r.bytes_out / 1e9:.2f}",
                target=r.target,
                seconds=f"{r.seconds:.1f}",
            )
            for r in results
        ]
        reason = message("convert.done", why=why, done=joined(done, "convert.both"))
        return GateOutcome.said(
            GateStatus.PASS, reason, summary=summary, result=results[0], artifacts=records
        )


def _target(name: str) -> Any:
    from adaptgate.convert.models import Target
    from adaptgate.errors import UsageError

    try:
        return Target(name)
    except ValueError:
        raise UsageError(
            f"unknown conversion target {name!r}",
            fix=f"use one of: {', '.join(t.value for t in Target)}",
        ) from None


def _convert(ctx: RunContext, kind: Any, dirname: str) -> Any:
    """One conversion into ``<run>/convert/<dirname>``, reused when already finished."""
    from adaptgate.convert.engine import run_conversion
    from adaptgate.convert.models import ConvertOptions, OutputFormat

    out_dir = ctx.gate_dir(ConvertGate.name) / dirname
    model = ctx.settings.model
    fmt = OutputFormat.default(kind, ctx.settings.target)
    result = _previous(out_dir, model, kind.value, fmt.value if fmt else None)
    if result is None:
        if out_dir.exists():  # an unverified or different earlier output: start over
            import shutil

            shutil.rmtree(out_dir)
        options = ConvertOptions(model=model, out=out_dir, target=kind, verify=True, format=fmt)
        result = run_conversion(options, ctx.out)
    return result


def _problems(result: Any) -> list[Said]:
    """What fails the conversion; verification's and lint's lines name tensors and files and
    are quoted as written."""
    from adaptgate.inspect.lint import compare_side_files

    lines = list(result.verify.problems) if result.verify else []
    # the output must keep the source's tokenizer, chat template, generation and model config
    lines += [
        f.line() for f in compare_side_files(Path(result.source_dir), Path(result.output_dir))
    ]
    problems = [Said(text=line) for line in lines]
    if result.errors.nonfinite:
        problems.append(said("convert.nonfinite", count=result.errors.nonfinite))
    if result.errors.saturated:
        problems.append(said("convert.saturated", count=result.errors.saturated))
    return problems
