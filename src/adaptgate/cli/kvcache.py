"""``adaptgate kvcache``: parse options into KVCacheConfig, call run_kvcache, render."""

from __future__ import annotations

from pathlib import Path

import click

from adaptgate.cli._common import (
    dtype_option,
    emit_json,
    handle_errors,
    kv_formats_option,
    output_options,
    prompts_option,
    renamed_option,
    stream_layers_option,
    thresholds_option,
)
from adaptgate.console import Output
from adaptgate.errors import EXIT_OK


@click.command(
    epilog="""\b
Examples:
  adaptgate kvcache ./Qwen2.5-7B-Instruct
  adaptgate kvcache ./Qwen3-8B-FP8 --kv-formats fp8_e4m3 --scales checkpoint
  adaptgate kvcache ./Qwen2.5-7B-Instruct --scales calibrated --out kv/   # writes the fix
  adaptgate kvcache ./model --kv-formats fp8_e4m3 --engine local   # + measured on vLLM here
  adaptgate kvcache ./model --kv-formats int8_c8 \\
      --engine-url auto=http://npu:8000 --engine-url int8_c8=http://npu:8001
  adaptgate kvcache ./GLM-4.7-FP8 --mode teacher-forced --new-tokens 512   # one pass
  adaptgate kvcache ./model --json > kvcache.json"""
)
@click.argument("model")
@kv_formats_option("fp8_e4m3,fp8_e5m2,int8_c8")
@click.option(
    "--scales",
    type=click.Choice(["checkpoint", "unit", "calibrated"]),
    default="checkpoint",
    show_default=True,
    help="checkpoint: the k/v scales stored in the model (1.0 where none, as vLLM); unit: 1.0; "
    "calibrated: computed from the prompt set and written out with --out.",
)
@click.option(
    "--mode",
    type=click.Choice(["auto", "full", "teacher-forced"]),
    default="auto",
    show_default=True,
    help="full: free-running greedy decoding per format (degeneration) and teacher-forced steps, "
    "on the fully loaded model; teacher-forced: one pass over the weights along forced texts "
    "(built-in long texts, or the end of each --prompts text), degeneration not measured; auto: "
    "full when the model fits in memory.",
)
@stream_layers_option
@click.option("--new-tokens", default=256, show_default=True, type=click.IntRange(min=1),
              help="Greedy tokens per prompt (teacher-forced: forced tokens).")  # fmt: skip
@prompts_option
@dtype_option
@click.option("--out", "out_dir", type=click.Path(path_type=Path),
              help="Write kvcache.json, the outlier plot and calibrated scales here.")  # fmt: skip
@thresholds_option("kvcache")
@click.option(
    "--prefill",
    type=click.Choice(["engine", "fresh", "cache"]),
    default="engine",
    show_default=True,
    help="Where prefill attention reads K/V: as each format's engine does (vLLM V1: the "
    "quantized cache; vllm-ascend C8: the fresh K/V), or forced for every format.",
)
@click.option("--threads", type=click.IntRange(min=1), help="torch threads (default: auto).")
@click.option(
    "--engine",
    type=click.Choice(["off", "local"]),
    default="off",
    show_default=True,
    help="local: also serve the model with auto and each FP8 cache on this machine's vLLM "
    "(cpu) and measure the engine against the reference, beside the simulation.",
)
@click.option(
    "--engine-url",
    "engine_urls",
    multiple=True,
    metavar="NAME=URL",
    help="A server of the same model to measure, keyed by auto or a format "
    "(auto=URL is required); repeat per cache.",
)
@click.option("--engine-max-model-len", type=click.IntRange(min=16),
              help="--max-model-len of the servers --engine local starts.")  # fmt: skip
@renamed_option("--kv-dtypes", "--kv-formats", "kv_formats")
@output_options
@handle_errors
def command(
    model: str,
    kv_formats: str,
    scales: str,
    mode: str,
    stream: bool | None,
    new_tokens: int,
    prompts_file: Path | None,
    dtype: str,
    out_dir: Path | None,
    thresholds_file: Path | None,
    prefill: str,
    threads: int | None,
    engine: str,
    engine_urls: tuple[str, ...],
    engine_max_model_len: int | None,
    out: Output,
) -> int:
    """Will an FP8 or INT8 KV cache break this model? SAFE / RISKY / UNSAFE per format, the
    layers at risk, and the --kv-cache-dtype to use. Exit 1 when no tested format is SAFE
    (on the simulation and, when measured, on the engine)."""
    from adaptgate.kvcache.api import parse_kv_dtypes, run_kvcache
    from adaptgate.kvcache.engine import parse_engine_urls
    from adaptgate.kvcache.models import KVCacheConfig
    from adaptgate.kvcache.render import render_result

    cfg = KVCacheConfig(
        model=model,
        kv_dtypes=parse_kv_dtypes(kv_formats),
        scales=scales,
        mode=mode,
        stream=stream,
        new_tokens=new_tokens,
        prompts_file=prompts_file,
        dtype=dtype,
        out=out_dir,
        thresholds_file=thresholds_file,
        threads=threads,
        prefill=prefill,
        engine=engine,
        engine_urls=parse_engine_urls(list(engine_urls)),
        engine_max_model_len=engine_max_model_len,
    )
    result = run_kvcache(cfg, out)
    emit_json(out, result.to_json())
    if out.human:
        render_result(result, out.console())
    return EXIT_OK if any(f.combined_verdict == "SAFE" for f in result.formats) else 1
