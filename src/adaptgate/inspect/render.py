"""Renderings of an InspectResult: rich tables for people, ANALYSIS_REPORT.md for the run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from adaptgate.inspect.devices import DeviceProfile, GiB
from adaptgate.results import write_text_atomic

if TYPE_CHECKING:
    from rich.console import Console

    from adaptgate.inspect.models import InspectResult

REPORT_FILE = "ANALYSIS_REPORT.md"
JSON_FILE = "inspect.json"


def _b(n: int) -> str:
    return f"{n / 1e9:.3f}B" if n >= 10**8 else f"{n:,}"


def _gib(n: int) -> str:
    return f"{n / GiB:.2f} GiB"


def spec_rows(r: InspectResult) -> list[tuple[str, str]]:
    f = r.facts
    rows = [
        ("Architecture", f"{f.architecture} ({f.model_type}, family {f.family})"),
        ("Type", ("MoE" if f.is_moe else "dense") + (" + MLA" if f.is_mla else "")),
        ("Layers / hidden", f"{f.num_layers} / {f.hidden_size}"),
        ("Attention heads", f"{f.num_heads} (KV heads {f.num_kv_heads}, head_dim {f.head_dim})"),
        ("Vocabulary", str(f.vocab_size)),
        ("Intermediate (dense / MoE)", f"{f.intermediate_size} / {f.moe_intermediate_size}"),
        ("QK norm / attention bias", f"{f.qk_norm} / {f.attention_bias}"),
        ("RoPE", f"theta {f.rope_theta}, rotary dim {f.rotary_dim} ({f.partial_rotary_factor})"),
        ("Context length", str(f.context_length)),
        ("Tied embeddings / dtype", f"{f.tie_word_embeddings} / {f.dtype}"),
    ]
    if f.is_moe:
        rows.append(
            (
                "Experts",
                f"{f.n_routed_experts} routed, {f.n_shared_experts} shared, "
                f"{f.experts_per_token} per token; {len(f.moe_layers)} MoE layers "
                f"(first dense {f.first_dense_layers}, mlp_only {f.mlp_only_layers})",
            )
        )
    if f.is_mla:
        rows.append(("MLA", f"q_lora {f.q_lora_rank}, kv_lora {f.kv_lora_rank}"))
    if f.mtp_layers:
        rows.append(("MTP layers", str(f.mtp_layers)))
    return rows


def param_rows(r: InspectResult) -> list[tuple[str, ...]]:
    c, comp = r.counts, r.params_computed
    rows: list[tuple[str, ...]] = [
        (k, _b(v), _b(comp.by_category.get(k, 0))) for k, v in c.by_category.items() if v
    ]
    rows += [
        ("total (MTP excluded)", _b(c.total), _b(comp.total)),
        ("active per token", _b(c.active), _b(comp.active)),
        ("MTP (apart)", _b(c.mtp), _b(comp.mtp)),
    ]
    return rows


def plan_rows(r: InspectResult) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for opt in r.routes:
        best = opt.plan.best if opt.plan else None
        status = opt.plan.summary.text if opt.plan else "no --device: not planned"
        rows.append(
            (
                opt.route
                + (f" ({opt.loads_as} at load)" if opt.loads_as else "")
                + (" *" if opt.route == r.recommended else ""),
                f"{opt.weight_bytes / 1e9:.2f} GB"
                if opt.weight_bytes >= 10**8
                else f"{opt.weight_bytes:,} B",
                _gib(best.weights_per_rank) if best else "-",
                str(best.max_len_one_seq) if best else "-",
                status,
            )
        )
    return rows


def quant_line(r: InspectResult) -> str:
    q = r.quant
    parts = [f"{q.method} {q.label}", f"weights {q.weight_dtype}"]
    if q.block_size:
        parts.append(f"block {q.block_size}")
    if q.activation_scheme:
        parts.append(f"activations {q.activation_scheme}")
    if q.kv_cache_type or q.kv_cache_scheme:
        parts.append(f"KV {q.kv_cache_type or q.kv_cache_scheme}")
    return ", ".join(parts)


def render_tables(r: InspectResult, console: Console) -> None:
    from rich.table import Table

    spec = Table(title="Model", show_header=False)
    for k, v in spec_rows(r):
        spec.add_row(k, v)
    counts = Table("part", f"count ({r.counts.source})", "computed from config", title="Parameters")
    for row in param_rows(r):
        counts.add_row(*row)
    console.print(spec, counts)
    console.print(f"Quantization: {quant_line(r)}")
    kv = r.kv_cache.bytes_per_token
    console.print(
        f"KV cache per token ({r.kv_cache.kind}): bf16 {kv['bf16']} B, fp8/int8 {kv['fp8']} B"
    )
    if r.routes:
        plan = Table("route", "weights", "per rank", "max len", "plan", title="Routes and memory")
        for row in plan_rows(r):
            plan.add_row(*row)
        console.print(plan)
    if r.operator_scan is not None:
        # the rows: `adaptgate operators MODEL --vllm-ascend-src DIR`
        console.print(f"Operators (static scan): {r.operator_scan.summary()}")
    for w in r.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    colour = "green" if r.verdict == "PASS" else "red"
    console.print(f"[bold {colour}]{r.verdict}[/] {r.reason}")


def render_devices(devices: list[DeviceProfile], console: Console) -> None:
    from rich.table import Table

    table = Table("id", "name", "platform", "memory", "util", "KV block", title="Device profiles")
    for d in devices:
        memory = f"{d.memory_gib:.2f} GiB" if d.memory_bytes else "detected"
        table.add_row(
            d.id,
            d.name,
            d.platform,
            f"{memory} ({d.memory_note})",
            f"{d.default_utilization:g}",
            str(d.kv_block_size),
        )
    console.print(table)


def _md_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]
    return [*lines, ""]


def markdown_report(r: InspectResult) -> str:
    title = r.model or r.config_path or "model"
    lines = [f"# Analysis report: {title}", "", f"**Verdict: {r.verdict}** - {r.reason}", ""]
    lines += ["## Model specification", "", *_md_table(("item", "value"), spec_rows(r))]
    src = "tensor headers (exact)" if r.params else "config formula (computed)"
    lines += [f"## Parameters ({src})", ""]
    lines += _md_table(("part", "count", "computed from config"), param_rows(r))
    if r.params_check:
        lines += [f"Headers vs formula: {r.params_check.diff_pct:+.3f}%.", ""]
    q = r.quant
    lines += ["## Quantization", "", f"- Scheme: {quant_line(r)} (from {q.source})"]
    if q.ignore:
        lines.append(f"- Not quantized: {', '.join(q.ignore)}")
    lines += [
        f"- Disagreement: {d.message} ({d.count}, e.g. {', '.join(d.examples)})"
        for d in q.disagreements
    ]
    kv = r.kv_cache
    lines += [
        "",
        "## KV cache",
        "",
        f"{kv.kind}; bytes per token (tp=1): "
        + ", ".join(f"{k} {v}" for k, v in kv.bytes_per_token.items()),
        "",
    ]
    if r.support:
        s = r.support
        lines += [f"## Support on {s.target} (release {s.release})", ""]
        if r.release:
            lines += [f"- Release: {r.release.engine} {r.release.release} ({r.release.why})"]
        lines += [
            f"- Architecture {s.architecture}: {s.architecture_status}",
            f"- Quantization {s.scheme_key}: {s.quant_status}"
            + (f" (runs as {s.runs_as})" if s.runs_as else ""),
            f"- Verdict: **{s.verdict}**",
        ]
        lines += [f"- Error: {e}" for e in s.errors] + [f"- Note: {n}" for n in s.notes]
        lines += [f"- Caveat: {c}" for c in s.caveats]
        lines += [f"- Source: {x}" for x in s.sources] + [""]
    if r.routes:
        dev = f"{r.devices} x {r.device.id}" if r.device else "no device"
        lines += [f"## Routes and memory plan ({dev}, utilization {r.utilization})", ""]
        lines += _md_table(("route", "weights", "per rank", "max len", "plan"), plan_rows(r))
        if r.recommendation:
            lines += [f"Recommended: **{r.recommended}** - {r.recommendation}", ""]
    return "\n".join(lines) + "\n"


def write_outputs(r: InspectResult, out_dir: Path) -> list[Path]:
    json_path = r.write_json(out_dir / JSON_FILE)
    report = out_dir / REPORT_FILE
    write_text_atomic(report, markdown_report(r))
    return [json_path, report]
