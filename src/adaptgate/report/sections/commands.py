"""Each gate's work as the stand-alone adaptgate commands that redo it, built from the values the
gate recorded (its options are in its result), so a number can be reproduced gate by gate.

A gate that records its own ``command`` (a string or an argv list, in its result or summary)
is shown as it recorded it.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from adaptgate.record import GateRecord, RunRecord
from adaptgate.report.sections.base import get

Argv = list[str]


def _opt(argv: Argv, flag: str, value: Any, default: Any = None) -> None:
    if value is not None and value != default and value is not False:
        argv += (
            [flag]
            if value is True
            else [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
        )


def inspect_commands(record: RunRecord, _gate: GateRecord) -> list[Argv]:
    s = record.settings
    argv = ["adaptgate", "inspect", s.model, "--target", s.target]
    _opt(argv, "--device", s.device)
    _opt(argv, "--devices", s.devices, 1)
    _opt(argv, "--max-model-len", s.max_model_len)
    _opt(argv, "--gpu-memory-utilization", s.gpu_memory_utilization)
    _opt(argv, "--allow-pickle", s.allow_pickle)
    return [argv]


def convert_commands(_record: RunRecord, gate: GateRecord) -> list[Argv]:
    r = gate.result or {}
    if not r.get("source_dir"):
        return []
    return [["adaptgate", "convert", r["source_dir"], r["output_dir"], "--to", r["target"],
             "--verify"]]  # fmt: skip


def serve_commands(record: RunRecord, gate: GateRecord) -> list[Argv]:
    plan = get(gate.result, "plan")
    if not plan:
        return []
    s = record.settings
    argv = ["adaptgate", "plan", str(plan.get("model")), "--target", str(plan.get("target"))]
    _opt(argv, "--device", s.device)
    _opt(argv, "--devices", s.devices, 1)
    _opt(argv, "--max-model-len", s.max_model_len)
    _opt(argv, "--gpu-memory-utilization", s.gpu_memory_utilization)
    _opt(argv, "--port", plan.get("port"), 8000)
    return [argv]


def smoke_commands(record: RunRecord, gate: GateRecord) -> list[Argv]:
    r = gate.result or {}
    if not r.get("url"):
        return []
    serve = record.gate("serve")
    summary = serve.summary if serve else {}
    argv = ["adaptgate", "smoke", r["url"]]
    _opt(argv, "--model", r.get("model"))
    _opt(argv, "--max-model-len", summary.get("max_model_len"))
    if summary.get("thinking") is not None:
        argv.append("--thinking" if summary["thinking"] else "--no-thinking")
    _opt(argv, "--tools", bool(summary.get("tools")))
    return [argv]


def _reference(dump: dict[str, Any], tokens: Any) -> Argv:
    argv = ["adaptgate", "reference", str(dump.get("model_path")), "--out", str(dump.get("path"))]
    _opt(argv, "--max-new-tokens", tokens, 32)
    _opt(argv, "--simulate", dump.get("simulate"))
    return argv


def precision_commands(_record: RunRecord, gate: GateRecord) -> list[Argv]:
    r = gate.result or {}
    tokens = get(r, "reference.max_new_tokens")
    out: list[Argv] = []
    pair = r.get("conversion") or (r if r.get("kind") == "compare" else None)
    if pair:
        ref, cand = pair.get("reference") or {}, pair.get("candidate") or {}
        out += [_reference(ref, tokens), _reference(cand, tokens)]
        argv = ["adaptgate", "compare", str(ref.get("path")), str(cand.get("path"))]
        _opt(argv, "--profile", get(pair, "thresholds.profile"), "device")
        out.append(argv)
    served = r.get("served")
    if served:
        ref = served.get("reference") or {}
        if not pair:
            out.append(_reference(ref, tokens))
        argv = ["adaptgate", "precision", str(served.get("url")), "--reference",
                str(ref.get("path"))]  # fmt: skip
        _opt(argv, "--model", served.get("model"))
        _opt(argv, "--profile", get(served, "thresholds.profile"), "device")
        out.append(argv)
    return out


def _bench_argv(cfg: dict[str, Any]) -> Argv:
    endpoint, data = cfg.get("endpoint") or {}, cfg.get("dataset") or {}
    load, slo = cfg.get("load") or {}, cfg.get("slo") or {}
    argv = ["adaptgate", "bench", str(endpoint.get("url"))]
    _opt(argv, "--model", endpoint.get("model"))
    _opt(argv, "--api", endpoint.get("api"), "completions")
    _opt(argv, "--dataset", data.get("kind"), "random")
    _opt(argv, "--dataset-path", data.get("path"))
    _opt(argv, "--input-len", data.get("input_len"))
    _opt(argv, "--output-len", data.get("output_len"))
    _opt(argv, "--range-ratio", data.get("range_ratio"), 0.0)
    _opt(argv, "--prefix-len", data.get("prefix_len"), 0)
    _opt(argv, "--closed", load.get("mode") == "closed")
    _opt(argv, "--rate", load.get("rate"))
    _opt(argv, "--arrival", load.get("arrival"), "poisson")
    _opt(argv, "--burstiness", load.get("burstiness"), 1.0)
    _opt(argv, "--concurrency", load.get("concurrency"))
    _opt(argv, "--num-requests", load.get("num_requests"), 200)
    _opt(argv, "--duration", load.get("duration_s"))
    _opt(argv, "--warmup", load.get("warmup_requests"), 0)
    _opt(argv, "--seed", load.get("seed"), 0)
    if data.get("ignore_eos") is False:
        argv.append("--no-ignore-eos")
    for key in ("ttft_ms", "tpot_ms", "e2el_ms"):
        _opt(argv, f"--slo-{key.replace('_ms', '')}-ms", slo.get(key))
    return argv


def bench_commands(_record: RunRecord, gate: GateRecord) -> list[Argv]:
    r = gate.result or {}
    runs: list[Any] = r["runs"] if isinstance(r.get("runs"), list) else [r]
    configs: list[dict[str, Any]] = [
        run["config"]
        for run in runs
        if isinstance(run, dict) and isinstance(run.get("config"), dict)
    ]
    if not configs:
        return []
    argv = _bench_argv(configs[0])
    if len(configs) > 1:  # a sweep: the axis values of its runs
        axis = "rate" if r.get("axis") == "rate" else "concurrency"
        values = [get(c, f"load.{axis}") for c in configs]
        argv = [w for w in argv if w not in (f"--{axis}", str(values[0]))]
        _opt(argv, "--rates" if axis == "rate" else "--concurrencies", values)
    _opt(argv, "--out", get(configs[0], "output.dir"))
    return [argv]


BUILDERS: dict[str, Callable[[RunRecord, GateRecord], list[Argv]]] = {
    "inspect": inspect_commands,
    "convert": convert_commands,
    "serve": serve_commands,
    "smoke": smoke_commands,
    "precision": precision_commands,
    "bench": bench_commands,
}
RECORDED = ("command", "argv", "cli")


def gate_commands(record: RunRecord) -> list[tuple[GateRecord, list[str]]]:
    """(gate, shell lines) for every gate that ran and left what its command needs."""
    out = []
    for gate in record.gates:
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
            lines = [shlex.join(a) for a in builder(record, gate)] if builder else []
        if lines:
            out.append((gate, lines))
    return out
