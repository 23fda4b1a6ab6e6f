"""Human rendering of a reference dump's metadata (the JSON is the result)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from adaptgate.reference.dump import ReferenceDump


def _first(values: list[str], count: int = 4) -> str:
    """The first ``count`` values, then "..." when there are more."""
    return ", ".join(values[:count]) + (", ..." if len(values) > count else "")


def render(meta: ReferenceDump, console: Console, out_dir: str) -> None:
    from rich.table import Table

    m = meta.model
    console.print(
        f"[bold]{m.architecture}[/] {m.quantization}, {m.num_layers} layers -> {out_dir}\n"
        f"device {meta.device}, {meta.dtype}, {meta.mode} load"
        + (f", simulating {meta.simulate}" if meta.simulate else "")
    )
    table = Table("prompt", "category", "tokens", "generated", "stop", "continuation")
    for p in meta.prompts:
        text = " ".join(p.generated_text.split())
        table.add_row(
            p.id,
            p.category,
            str(len(p.token_ids)),
            str(len(p.generated_ids)),
            p.stop_reason,
            text[:48] + ("..." if len(text) > 48 else ""),
        )
    console.print(table)
    t = meta.timings
    if t is not None:
        rss = f", peak RSS {t.peak_rss_bytes / 2**20:.0f} MiB" if t.peak_rss_bytes else ""
        console.print(
            f"load {t.load_seconds:.2f} s, forward {t.forward_seconds:.2f} s, "
            f"total {t.total_seconds:.2f} s{rss}"
        )
        if t.passes is not None:
            read = _first([f"{b / 2**20:.0f}" for b in t.bytes_read_per_pass])
            console.print(
                f"{meta.continuation} continuation: {t.passes} pass(es) over the weights, "
                f"MiB read per pass {read}; RAM cache {(t.cache_bytes or 0) / 2**20:.0f} "
                f"MiB, {t.cache_hits} hits"
            )
        if t.routed_experts:
            per = _first([str(n) for n in t.experts_read_per_pass])
            console.print(f"routed experts read per pass (of {t.routed_experts}, by group): {per}")
