"""``adaptgate reference MODEL --out DUMP``: the FP32 reference dump."""

from __future__ import annotations

from pathlib import Path

import click

from adaptgate.cli._common import (
    dtype_option,
    emit_json,
    handle_errors,
    max_memory_option,
    output_options,
    prompts_option,
    renamed_option,
    stream_layers_option,
)
from adaptgate.console import Output, Progress
from adaptgate.errors import EXIT_OK

EXAMPLES = """\b
Examples:
  adaptgate reference ./Qwen3-8B-FP8 --out ref-cpu
  adaptgate reference ./Qwen3-8B-FP8 --out ref-npu --torch-device npu    (on the NPU machine)
  adaptgate reference ./GLM-4.7-FP8 --out ref --stream-layers --layers 0-3,40,91
  adaptgate reference ./Qwen3-8B-FP8 --out ref-w8a8 --simulate w8a8-dynamic
  adaptgate reference ./Qwen3-8B-W8A8 --out ref-conv --continuations-from ref-cpu --max-memory 8GiB
Then: adaptgate compare ref-cpu ref-npu"""


@click.command("reference", epilog=EXAMPLES)
@click.argument("model")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Dump directory (reference.json + reference.safetensors).",
)
@click.option(
    "--torch-device",
    default="cpu",
    show_default=True,
    help="Any torch device: cpu, cuda, cuda:1, npu (needs torch_npu), ...",
)
@dtype_option
@prompts_option
@click.option(
    "--max-new-tokens",
    default=32,
    show_default=True,
    type=click.IntRange(min=0),
    help="Greedy tokens generated per prompt.",
)
@click.option(
    "--top-k",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Log-probabilities kept per generated token.",
)
@click.option(
    "--layers",
    default="all",
    show_default=True,
    help="Hidden states to dump: all, none, or e.g. 0-3,10.",
)
@stream_layers_option
@click.option(
    "--simulate",
    type=click.Choice(["w8a8-dynamic"]),
    help="Compute Linears as Ascend's W8A8_DYNAMIC int8 kernels would.",
)
@click.option(
    "--continuations-from",
    type=click.Path(path_type=Path),
    help="Score another dump's continuations teacher-forced, in one pass over the weights, "
    "instead of decoding greedily (same prompts).",
)
@max_memory_option
@renamed_option("--device", "--torch-device", "torch_device")  # --device is a device profile
@output_options
@handle_errors
def command(
    model: str,
    out_dir: Path,
    torch_device: str,
    dtype: str,
    prompts_file: Path | None,
    max_new_tokens: int,
    top_k: int,
    layers: str,
    stream: bool | None,
    simulate: str | None,
    continuations_from: Path | None,
    max_memory: int | None,
    out: Output,
) -> int:
    """Teacher-forced forward over a prompt set plus a greedy continuation (or another dump's
    continuation, scored in one pass); dumps logits at every position, the hidden state after
    every decoder layer and the continuation tokens' logprobs."""
    from adaptgate.reference.api import ReferenceConfig, build_reference, parse_layers

    cfg = ReferenceConfig(
        model=model,
        out=out_dir,
        device=torch_device,
        dtype=dtype,
        prompts_file=prompts_file,
        max_new_tokens=max_new_tokens,
        top_k=top_k,
        layers=parse_layers(layers),
        stream=stream,
        simulate=simulate,
        continuations_from=continuations_from,
        max_memory=max_memory,
    )
    bars: list[Progress] = []

    def start(total: int) -> None:
        bars.append(Progress(total, "reference", unit="units").__enter__())

    try:
        meta = build_reference(
            cfg, on_unit=lambda _u: bars[0].advance() if bars else None, on_start=start
        )
    finally:
        for bar in bars:
            bar.__exit__(None, None, None)
    emit_json(out, meta.to_json())
    if out.human:
        from adaptgate.reference.render import render

        render(meta, out.console(), str(out_dir))
    return EXIT_OK
