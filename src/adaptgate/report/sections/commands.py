"""Each gate's work as the stand-alone adaptgate commands that redo it, built from the values the
gate recorded (its options are in its result), so a number can be reproduced gate by gate.

A gate that records its own ``command`` (a string or an argv list, in its result or summary)
is shown as it recorded it.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from adaptgate.bench.models import BenchConfig, SweepResult
from adaptgate.convert.models import ConversionResult
from adaptgate.precision.models import DumpSummary, PrecisionGateResult
from adaptgate.record import GateRecord
from adaptgate.report.sections.base import get
from adaptgate.report.sections.bench import bench_result, runs_of
from adaptgate.report.view import RunView
from adaptgate.serve.models import ServeGateResult
from adaptgate.smoke.models import SmokeResult

Argv = list[str]


def _opt(argv: Argv, flag: str, value: Any, default: Any = None) -> None:
    if value is not None and value != default and value is not False:
        argv += (
            [flag]
            if value is True
            else [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
        )


def inspect_commands(run: RunView, _gate: GateRecord) -> list[Argv]:
    s = run.record.settings
    argv = ["adaptgate", "inspect", s.model, "--target", s.target]
    _opt(argv, "--device", s.device)
    _opt(argv, "--devices", s.devices, 1)
    _opt(argv, "--max-model-len", s.max_model_len)
    _opt(argv, "--gpu-memory-utilization", s.gpu_memory_utilization)
    _opt(argv, "--allow-pickle", s.allow_pickle)
    return [argv]


def convert_commands(run: RunView, gate: GateRecord) -> list[Argv]:
    r = run.result(gate.name, ConversionResult)
    if r is None or not r.source_dir:
        return []
    return [["adaptgate", "convert", r.source_dir, r.output_dir, "--to", r.target, "--verify"]]


def serve_commands(run: RunView, gate: GateRecord) -> list[Argv]:
    r = run.result(gate.name, ServeGateResult)
    if r is None:
        return []
    s, plan = run.record.settings, r.plan
    argv = ["adaptgate", "plan", plan.model, "--target", plan.target]
    _opt(argv, "--device", s.device)
    _opt(argv, "--devices", s.devices, 1)
    _opt(argv, "--max-model-len", s.max_model_len)
    _opt(argv, "--gpu-memory-utilization", s.gpu_memory_utilization)
    _opt(argv, "--port", plan.port, 8000)
    return [argv]


def smoke_commands(run: RunView, gate: GateRecord) -> list[Argv]:
    r = run.result(gate.name, SmokeResult)
    if r is None or not r.url:
        return []
    serve = run.gate("serve")
    summary = serve.summary if serve else {}
    argv = ["adaptgate", "smoke", r.url]
    _opt(argv, "--model", r.model)
    _opt(argv, "--max-model-len", summary.get("max_model_len"))
    if summary.get("thinking") is not None:
        argv.append("--thinking" if summary["thinking"] else "--no-thinking")
    _opt(argv, "--tools", bool(summary.get("tools")))
    return [argv]


def _reference(dump: DumpSummary, tokens: int) -> Argv:
    argv = ["adaptgate", "reference", dump.model_path, "--out", dump.path]
    _opt(argv, "--max-new-tokens", tokens, 32)
    _opt(argv, "--simulate", dump.simulate)
    return argv


def precision_commands(run: RunView, gate: GateRecord) -> list[Argv]:
    r = run.result(gate.name, PrecisionGateResult)
    if r is None:
        return []
    tokens = r.reference.max_new_tokens
    out: list[Argv] = []
    pair = r.conversion
    if pair is not None:
        out += [_reference(pair.reference, tokens), _reference(pair.candidate, tokens)]
        argv = ["adaptgate", "compare", pair.reference.path, pair.candidate.path]
        _opt(argv, "--profile", pair.thresholds.profile, "device")
        out.append(argv)
    served = r.served
    if served is not None:
        if pair is None:
            out.append(_reference(served.reference, tokens))
        argv = ["adaptgate", "precision", served.url, "--reference", served.reference.path]
        _opt(argv, "--model", served.model)
        _opt(argv, "--profile", served.thresholds.profile, "device")
        out.append(argv)
    return out


def _bench_argv(cfg: BenchConfig) -> Argv:
    endpoint, data, load, slo = cfg.endpoint, cfg.dataset, cfg.load, cfg.slo
    argv = ["adaptgate", "bench", endpoint.url]
    _opt(argv, "--model", endpoint.model)
    _opt(argv, "--api", endpoint.api, "completions")
    _opt(argv, "--dataset", data.kind, "random")
    _opt(argv, "--dataset-path", data.path)
    _opt(argv, "--input-len", data.input_len)
    _opt(argv, "--output-len", data.output_len)
    _opt(argv, "--range-ratio", data.range_ratio, 0.0)
    _opt(argv, "--prefix-len", data.prefix_len, 0)
    _opt(argv, "--closed", load.mode == "closed")
    _opt(argv, "--rate", load.rate)
    _opt(argv, "--arrival", load.arrival, "poisson")
    _opt(argv, "--burstiness", load.burstiness, 1.0)
    _opt(argv, "--concurrency", load.concurrency)
    _opt(argv, "--num-requests", load.num_requests, 200)
    _opt(argv, "--duration", load.duration_s)
    _opt(argv, "--warmup", load.warmup_requests, 0)
    _opt(argv, "--seed", load.seed, 0)
    if data.ignore_eos is False:
        argv.append("--no-ignore-eos")
    for key, value in (("ttft", slo.ttft_ms), ("tpot", slo.tpot_ms), ("e2el", slo.e2el_ms)):
        _opt(argv, f"--slo-{key}-ms", value)
    return argv


def bench_commands(run: RunView, gate: GateRecord) -> list[Argv]:
    result = bench_result(run, gate.name)
    configs = [r.config for _, r in runs_of(result)] if result is not None else []
    if not configs:
        return []
    argv = _bench_argv(configs[0])
    if len(configs) > 1:  # a sweep: the axis values of its runs
        axis = (
            "rate" if isinstance(result, SweepResult) and result.axis == "rate" else "concurrency"
        )
        values = [getattr(c.load, axis) for c in configs]
        argv = [w for w in argv if w not in (f"--{axis}", str(values[0]))]
        _opt(argv, "--rates" if axis == "rate" else "--concurrencies", values)
    _opt(argv, "--out", configs[0].output.dir)
    return [argv]


BUILDERS: dict[str, Callable[[RunView, GateRecord], list[Argv]]] = {
    "inspect": inspect_commands,
    "convert": convert_commands,
    "serve": serve_commands,
    "smoke": smoke_commands,
    "precision": precision_commands,
    "bench": bench_commands,
}
RECORDED = ("command", "argv", "cli")


def gate_commands(run: RunView) -> list[tuple[GateRecord, list[str]]]:
    """(gate, shell lines) for every gate that ran and left what its command needs."""
    out = []
    for gate in run.record.gates:
        # a gate the report does not know may record its own command (free-form JSON)
        recorded = next(
            (v for src in (gate.result, gate.summary) for k in RECORDED if (v := get(src, k))),
            None,
        )
        if isinstance(recorded, list):
            lines = [shlex.join(map(str, recorded))]
        elif recorded:
            lines = [str(recorded)]
        else:
            builder = BUILDERS.get(gate.name)
            lines = [shlex.join(a) for a in builder(run, gate)] if builder else []
        if lines:
            out.append((gate, lines))
    return out
