"""``adaptgate operators MODEL``: the operators the model's code uses, read statically from the
vLLM (or remote-code) source, checked against a vllm-ascend tree."""

from __future__ import annotations

from pathlib import Path

import click

from adaptgate.cli._common import (
    emit_json,
    handle_errors,
    output_options,
    vllm_ascend_src_option,
    vllm_src_option,
)
from adaptgate.console import Output

STATUS_STYLE = {"supported": "green", "needs verification": "yellow", "not checked": "dim"}


@click.command(
    epilog="""\b
Examples:
  adaptgate operators Qwen3ForCausalLM --vllm-ascend-src ~/src/vllm-ascend
  adaptgate operators ./GLM-4.7-FP8 --vllm-src ~/src/vllm --vllm-ascend-src ~/src/vllm-ascend
  adaptgate operators ./remote-code-model --json"""
)
@click.argument("model")
@vllm_src_option
@vllm_ascend_src_option
@output_options
@handle_errors
def command(model: str, vllm_src: Path | None, vllm_ascend_src: Path | None, out: Output) -> int:
    """Layers, custom ops, Triton kernels and quantization methods of MODEL (a checkpoint, its
    config.json or an architecture name), each supported by vllm-ascend or needing Stage A."""
    from adaptgate.inspect.opscan import scan_model

    scan = scan_model(model, vllm_src=vllm_src, vllm_ascend_src=vllm_ascend_src)
    emit_json(out, scan.model_dump_json(indent=2))
    if out.human:
        from rich.table import Table

        console = out.console()
        model = f"{scan.model_class or '?'} ({scan.model_source or '-'})"
        console.print(
            f"[bold]{scan.architecture}[/] -> {model}\n"
            f"vLLM {scan.vllm_version or '?'} at {scan.vllm_src or '-'}; vllm-ascend "
            f"{scan.vllm_ascend_release or '?'} at {scan.vllm_ascend_src or '- (not available)'}",
            soft_wrap=True,
        )
        table = Table("op", "kind", "status", "evidence")
        table.columns[0].no_wrap = True
        for r in scan.rows:
            status = f"[{STATUS_STYLE[r.status]}]{r.status}[/]"
            table.add_row(r.op, r.kind, status, r.evidence)
        console.print(table)
        for note in scan.notes:
            console.print(f"note: {note}", soft_wrap=True)
        console.print(f"[bold]{scan.summary()}[/]")
    return 1 if scan.count("needs verification") else 0
