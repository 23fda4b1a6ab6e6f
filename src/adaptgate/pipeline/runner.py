"""Runs the gates in order into a run directory, resuming from the first gate not passed."""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from adaptgate.console import Output
from adaptgate.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAIL,
    EXIT_INTERNAL,
    EXIT_OK,
    AdaptgateError,
    RunDirError,
    UsageError,
)
from adaptgate.gate import Gate, GateOutcome, RunContext
from adaptgate.record import (
    RUN_FILE,
    GateRecord,
    GateStatus,
    RunRecord,
    RunSettings,
    load_run,
)
from adaptgate.results import utc_now

# The gates in pipeline order, found by name and imported when a run needs them (the pipeline
# imports no gate module itself). kvcache runs before serve because its verdict decides the
# launch plan's --kv-cache-dtype (issue 5); the endpoint gates follow serve; the report, a layer
# above, renders run.json last.
GATES: dict[str, str] = {
    "inspect": "adaptgate.inspect.gate:InspectGate",
    "convert": "adaptgate.convert.gate:ConvertGate",
    "kvcache": "adaptgate.kvcache.gate:KVCacheGate",
    "serve": "adaptgate.serve.gate:ServeGate",
    "smoke": "adaptgate.smoke.gate:SmokeGate",
    "precision": "adaptgate.precision.gate:PrecisionGate",
    "accuracy": "adaptgate.accuracy.gate:AccuracyGate",
    "bench": "adaptgate.bench.gate:BenchGate",
    "report": "adaptgate.report.gate:ReportGate",
}


def gate_names() -> list[str]:
    return list(GATES)


def load_gate(name: str) -> Gate:
    module, _, cls = GATES[name].partition(":")
    gate: Gate = getattr(importlib.import_module(module), cls)()
    return gate


@dataclass
class RunOptions:
    settings: RunSettings
    run_dir: Path
    only: list[str] = field(default_factory=list)
    skip: list[str] = field(default_factory=list)
    fresh: bool = False


# With --url the endpoint gates measure a server that is already running; what they need from
# inspect and serve (the served name, max_model_len, features) costs a header read and a probe of
# /v1/models, so --only smoke (say) runs those two as well unless they are --skip'ped.
ENDPOINT_GATES = ("smoke", "precision", "accuracy", "bench")
NEEDED_BY_ENDPOINT_GATES = ("inspect", "serve")


def selected_gates(only: list[str], skip: list[str], *, url: str | None = None) -> list[str]:
    for name in [*only, *skip]:
        if name not in GATES:
            raise UsageError(f"unknown gate {name!r}", fix=f"use one of: {', '.join(GATES)}")
    chosen = only or list(GATES)
    if url and any(g in chosen for g in ENDPOINT_GATES):
        chosen = [*chosen, *NEEDED_BY_ENDPOINT_GATES]
    return [g for g in GATES if g in chosen and g not in skip]


def _open_record(opts: RunOptions) -> RunRecord:
    if opts.fresh or not (opts.run_dir / RUN_FILE).exists():
        return RunRecord(run_dir=str(opts.run_dir), settings=opts.settings)
    record = load_run(opts.run_dir)
    if differ := _differences(record.settings, opts.settings):
        raise RunDirError(
            f"{opts.run_dir} holds a run with other settings ({record.settings.model}, "
            f"target {record.settings.target}; {', '.join(differ)} differ)",
            fix="pass a new --run-dir, or --fresh to start this directory over",
        )
    return record


def _differences(old: RunSettings, new: RunSettings) -> list[str]:
    """The settings that differ: fields by name, the environment by variable."""
    fields = [name for name, value in new if name != "env" and getattr(old, name) != value]
    env = old.env.keys() | new.env.keys()
    return fields + sorted(k for k in env if old.env.get(k) != new.env.get(k))


def _execute(gate: Gate, ctx: RunContext) -> GateRecord:
    started, t0 = utc_now(), time.perf_counter()
    exit_code = None
    try:
        outcome = gate.run(ctx)
    except AdaptgateError as exc:
        outcome = GateOutcome(GateStatus.ERROR, exc.one_line())
        exit_code = exc.exit_code
    except Exception as exc:  # noqa: BLE001 - recorded as ERROR; the run goes on and exits 3
        outcome = GateOutcome(GateStatus.ERROR, f"internal error: {type(exc).__name__}: {exc}")
        exit_code = EXIT_INTERNAL
    artifacts = [
        str(p.relative_to(ctx.run_dir)) if p.is_absolute() else str(p) for p in outcome.artifacts
    ]
    return GateRecord(
        name=gate.name,
        title=gate.title,
        status=outcome.status,
        reason=outcome.reason,
        reason_id=outcome.reason_id,
        reason_params=outcome.reason_params,
        started=started,
        finished=utc_now(),
        seconds=round(time.perf_counter() - t0, 3),
        summary=outcome.summary,
        artifacts=artifacts,
        result=outcome.result.model_dump(mode="json") if outcome.result else None,
        exit_code=exit_code,
    )


def _gates_to_run(gates: list[Gate], record: RunRecord) -> list[Gate]:
    """From the first gate that has not passed, every gate; before it, the ``always`` gates and,
    when anything after them runs, the ``live`` ones."""

    def passed(gate: Gate) -> bool:
        previous = record.gate(gate.name)
        return previous is not None and previous.status is GateStatus.PASS

    first = next((i for i, g in enumerate(gates) if not g.always and not passed(g)), len(gates))
    return [
        g for i, g in enumerate(gates) if i >= first or g.always or (g.live and first < len(gates))
    ]


def _not_selected(gate: Gate, opts: RunOptions) -> GateRecord:
    how = f"--only {','.join(opts.only)}" if opts.only else f"--skip {','.join(opts.skip)}"
    return GateRecord(
        name=gate.name,
        title=gate.title,
        status=GateStatus.SKIPPED,
        reason=f"not selected ({how})",
    )


def run_pipeline(opts: RunOptions, out: Output | None = None) -> RunRecord:
    """Run the selected gates; a gate already PASSED in this run directory is reused until the
    first gate that had not passed, from which every gate runs again."""
    out = out or Output()
    # ADAPTGATE_* read once, here: the gates see (and run.json records) these settings only
    opts = replace(opts, settings=opts.settings.with_environment())
    names = selected_gates(opts.only, opts.skip, url=opts.settings.url)
    from adaptgate.checkpoint import resolve_model_path

    resolve_model_path(opts.settings.model)  # bad input fails here, before anything is written
    opts.run_dir.mkdir(parents=True, exist_ok=True)
    record = _open_record(opts)
    ctx = RunContext(run_dir=opts.run_dir, settings=opts.settings, record=record, out=out)
    for name in GATES:
        if name not in names and record.gate(name) is None:
            record.put(_not_selected(load_gate(name), opts))
    gates = [load_gate(name) for name in names]
    to_run = _gates_to_run(gates, record)
    try:
        for gate in gates:
            if gate not in to_run:
                out.status(f"= {gate.name}: PASS (kept from the earlier run)")
                continue
            out.status(f"> {gate.name}: {gate.title} ...")
            done = _execute(gate, ctx)
            record.put(done)
            record.save(opts.run_dir)
            out.status(f"  {gate.name}: {done.status.value} ({done.seconds:.1f} s) - {done.reason}")
    finally:
        for gate in to_run:  # servers a gate left running for the later gates stop with the run
            gate.close()
    record.gates.sort(key=lambda g: list(GATES).index(g.name))
    record.save(opts.run_dir)
    return record


def exit_code_of(record: RunRecord, *, strict: bool = False) -> int:
    """0 PASS; 1 a FAIL, nothing measured at all, or (with ``strict``) an INCONCLUSIVE gate;
    2 bad input; 3 internal error."""
    errors = [g.exit_code or EXIT_INTERNAL for g in record.gates if g.status is GateStatus.ERROR]
    if errors:
        return EXIT_INTERNAL if EXIT_INTERNAL in errors else EXIT_BAD_INPUT
    if any(g.status is GateStatus.FAIL for g in record.gates):
        return EXIT_FAIL
    if strict and any(g.status is GateStatus.INCONCLUSIVE for g in record.gates):
        return EXIT_FAIL
    if record.verdict is GateStatus.SKIPPED:
        return EXIT_FAIL
    return EXIT_OK
