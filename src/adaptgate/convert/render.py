"""Human rendering of a :class:`ConversionResult` (the JSON is the result; this is a view)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adaptgate.convert.models import ConversionResult

if TYPE_CHECKING:
    from rich.console import Console

WORST = 10


def render(result: ConversionResult, console: Console) -> None:
    from rich.table import Table

    table = Table(title=f"convert -> {result.target}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    rate = result.output_gb_per_s
    rows = [
        ("source", f"{result.source_dir} ({result.source_scheme})"),
        ("output", result.output_dir),
        ("size", f"{result.bytes_in / 1e9:.2f} GB -> {result.bytes_out / 1e9:.2f} GB"),
        ("time", f"{result.seconds:.1f} s ({rate:.2f} GB/s written, kernel: {result.kernel})"),
        ("shards", f"{len(result.shards)} ({len(result.resumed_shards)} reused from a resume)"),
        ("tensors", f"{len(result.tensors)} written, {len(result.dropped)} dropped"),
        ("saturated (fp16)", str(result.errors.saturated)),
        ("NaN/inf FP8 codes", str(result.errors.nonfinite)),
    ]
    if result.errors.int8_rel_error is not None:
        rows.append(("int8 rel. error", f"{result.errors.int8_rel_error:.3e} (whole model)"))
    if result.verify is not None:
        ok = "OK" if result.verify.ok else f"{len(result.verify.problems)} problems"
        rows.append(("verify", f"{ok} ({result.verify.sampled_blocks} blocks recomputed)"))
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    if result.errors.int8_layers:
        worst = Table(title="int8 relative error, worst layers first")
        worst.add_column("layer")
        worst.add_column("rel. error", justify="right")
        for entry in result.errors.int8_layers[:WORST]:
            worst.add_row(entry.name, f"{entry.rel_error:.3e}")
        console.print(worst)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    if result.verify is not None:
        for problem in result.verify.problems[:WORST]:
            console.print(f"[red]verify:[/red] {problem}")
