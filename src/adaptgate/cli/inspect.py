"""``adaptgate inspect``: parse options into InspectOptions, call inspect_model, render."""

from __future__ import annotations

from pathlib import Path

import click

from adaptgate.cli._common import (
    allow_pickle_option,
    config_option,
    cpu_memory_gib_option,
    device_option,
    devices_option,
    emit_json,
    gpu_memory_utilization_option,
    handle_errors,
    kv_cache_dtype_option,
    max_model_len_option,
    output_options,
    release_option,
    target_option,
    vllm_ascend_src_option,
    vllm_src_option,
)
from adaptgate.console import Output
from adaptgate.errors import EXIT_OK, UsageError


@click.command(
    epilog="""\b
Examples:
  adaptgate inspect ./Qwen3-4B-Thinking-2507-FP8 --device 910b4 --max-model-len 65536
  adaptgate inspect --config config.json --device 910b3 --devices 8
  adaptgate inspect ./GLM-4.7-FP8 --target ascend-a2 --out report/
  adaptgate inspect --list-devices"""
)
@click.argument("model", required=False)
@config_option
@target_option()
@release_option
@device_option
@devices_option
@max_model_len_option()
@gpu_memory_utilization_option
@kv_cache_dtype_option()
@cpu_memory_gib_option
@click.option("--speculative-mtp", is_flag=True, help="Plan the MTP draft layers' KV cache too.")
@allow_pickle_option
@vllm_src_option
@vllm_ascend_src_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    help="Write inspect.json and ANALYSIS_REPORT.md here.",
)
@click.option("--list-devices", is_flag=True, help="List the built-in device profiles and exit.")
@output_options
@handle_errors
def command(
    model: str | None,
    config_path: Path | None,
    target: str | None,
    release: str | None,
    device: str | None,
    devices: int,
    max_model_len: int | None,
    gpu_memory_utilization: float | None,
    kv_cache_dtype: str,
    cpu_memory_gib: float | None,
    speculative_mtp: bool,
    allow_pickle: bool,
    vllm_src: Path | None,
    vllm_ascend_src: Path | None,
    out_dir: Path | None,
    list_devices: bool,
    out: Output,
) -> int:
    """Architecture, exact parameter counts, quantization, KV cache, memory plan, support, route."""
    from adaptgate.inspect import InspectOptions, inspect_model, render
    from adaptgate.inspect import list_devices as all_devices
    from adaptgate.serve.models import inspect_kv_dtype

    if list_devices:
        profiles = all_devices()
        emit_json(out, "[" + ",".join(p.model_dump_json() for p in profiles) + "]")
        if out.human:
            render.render_devices(profiles, out.console())
        return EXIT_OK
    if (model is None) == (config_path is None):
        raise UsageError("give MODEL or --config (one of them)", fix="adaptgate inspect --help")
    options = InspectOptions.model_validate(
        {
            "model": model,
            "config_path": config_path,
            "target": target,
            "release": release,
            "device": device,
            "devices": devices,
            "max_model_len": max_model_len,
            "gpu_memory_utilization": gpu_memory_utilization,
            "kv_cache_dtype": inspect_kv_dtype(kv_cache_dtype),  # each FP8 variant: 1 byte
            "cpu_memory_gib": cpu_memory_gib,
            "speculative_mtp": speculative_mtp,
            "allow_pickle": allow_pickle,
            "vllm_src": vllm_src,
            "vllm_ascend_src": vllm_ascend_src,
        }
    )
    result = inspect_model(options)
    if out_dir is not None:
        render.write_outputs(result, out_dir)
    emit_json(out, result.to_json())
    if out.human:
        render.render_tables(result, out.console())
    return result.exit_code
