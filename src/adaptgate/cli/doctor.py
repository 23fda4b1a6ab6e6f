"""``adaptgate doctor LOG``: the known failure signatures in a vLLM / vllm-ascend log."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from adaptgate.cli._common import emit_json, handle_errors, output_options
from adaptgate.console import Output


@click.command(
    epilog="""\b
Examples:
  adaptgate doctor runs/serve/tiny-real/vllm.log
  kubectl logs vllm-0 | adaptgate doctor -
  adaptgate doctor vllm.log --json"""
)
@click.argument("log", type=click.Path(path_type=Path, allow_dash=True))
@output_options
@handle_errors
def command(log: Path, out: Output) -> int:
    """Match a server log against the failure knowledge base: cause and fix for each hit."""
    from adaptgate.serve.doctor import diagnose, diagnose_file

    diagnosis = diagnose(sys.stdin.read(), log="-") if str(log) == "-" else diagnose_file(log)
    emit_json(out, diagnosis.to_json())
    if out.human:
        console = out.console()
        if not diagnosis.findings:
            console.print(diagnosis.summary(), markup=False)
        for f in diagnosis.findings:
            console.print(f"[bold]{f.title}[/] ({f.id}, line {f.line}, {f.hits} hit(s))")
            console.print(f"  cause: {f.cause}", markup=False)
            console.print(f"  fix:   {f.fix}", markup=False)
            for line in f.evidence:
                console.print(f"  > {line}", markup=False)
    return 0
