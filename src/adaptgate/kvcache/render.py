"""Human rendering of a KVCacheResult: the verdict table, layers at risk, the recommendation."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from adaptgate.kvcache.models import KVCacheResult

_COLOR = {"SAFE": "green", "RISKY": "yellow", "UNSAFE": "red"}


def _verdict(v: str) -> str:
    return f"[bold {_COLOR.get(v, 'white')}]{v}[/]"


def render_result(result: KVCacheResult, console: Console) -> None:
    from rich.table import Table

    m, s = result.model, result.settings
    console.print(
        f"{m.path}: {m.architecture}, {m.num_layers} layers, {m.kv_heads} KV heads x "
        f"{m.head_dim}, k_proj bias {m.attention_bias}, QK-norm {m.qk_norm}\n"
        f"{s.prompts} prompts x {s.new_tokens} "
        f"{'forced' if s.mode == 'teacher-forced' else 'greedy'} tokens, {s.scales} scales, "
        f"reference {s.reference_dtype} ({s.loading} load); thresholds: {s.thresholds}"
    )
    if result.weights is not None:
        w = result.weights
        rss = f", peak RSS {w.peak_rss_bytes / 1e9:.2f} GB" if w.peak_rss_bytes else ""
        console.print(f"{w.passes:g} pass(es) over the weights, {w.bytes_read / 1e9:.2f} GB{rss}")
    table = Table(
        "format", "verdict", "clip", "saturated", "KL mean", "top-1", "exact", "rep+", "at risk",
        title="per format (clip: max |x/scale| / largest code; KL, top-1: teacher-forced)",
    )  # fmt: skip
    for f in result.formats:
        table.add_row(
            f.format, _verdict(f.verdict), f"{f.scan.clip_ratio:.3g}",
            f"{f.scan.saturated_fraction:.2%}", f"{f.logits.kl_mean:.2g}",
            f"{f.logits.top1_agreement:.0%}", f"{f.generation.exact_match_rate:.0%}",
            "n/a" if f.repetition_increase is None else f"{f.repetition_increase:+.2f}",
            str(len(f.layers_at_risk)),
        )  # fmt: skip
    console.print(table)
    for f in result.formats:
        console.print(
            f"{_verdict(f.verdict)} {f.format} ({f.scales.source} scales, prefill over "
            f"{'the cache' if f.prefill == 'cache' else 'fresh K/V'}): {f.reason}"
        )
    heads = [f"{f.format} (<= {result.scan[0].formats[f.format].limit:g})" for f in result.formats]
    worst = Table("layer", *heads, title="max |K/scale| / |V/scale| per layer (red: at risk)")
    for ls in result.scan:
        cells = []
        for f in result.formats:
            fl = ls.formats[f.format]
            text = f"{max(fl.k.amax_scaled):.3g} / {max(fl.v.amax_scaled):.3g}"
            cells.append(f"[red]{text}[/]" if fl.at_risk else text)
        worst.add_row(ls.name, *cells)
    if result.scan:
        console.print(worst)
    _render_engine(result, console)
    console.print(f"[bold]recommendation[/]: {result.recommendation}")
    if result.artifacts:
        console.print("written: " + ", ".join(result.artifacts))


def _render_engine(result: KVCacheResult, console: Console) -> None:
    from rich.table import Table

    engine = result.engine
    if engine is None:
        return
    if engine.skipped:
        console.print(f"engine: not measured -- {engine.skipped}")
        return
    table = Table(
        "cache", "verdict", "KL vs ref", "KL over auto", "top-1 vs auto", "exact vs auto",
        "rep+", title=f"measured on {engine.engine} (teacher-forced against the FP32 reference)",
    )  # fmt: skip
    if engine.auto is not None:
        a = engine.auto
        table.add_row("auto", "-", f"{a.kl_mean:.2g}", "-", "-", "-", "-")
    for f in engine.formats:
        if f.arm is None or f.verdict is None:
            table.add_row(f.format, "not measured", f.error or "", "", "", "", "")
            continue
        table.add_row(
            f.format, _verdict(f.verdict), f"{f.arm.kl_mean:.2g}", f"{f.kl_mean:.2g}",
            f"{f.top1_agreement:.0%}" if f.top1_agreement is not None else "-",
            f"{f.exact_match_rate:.0%}", f"{f.repetition_increase:+.2f}",
        )  # fmt: skip
    console.print(table)
