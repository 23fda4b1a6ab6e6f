"""One writer per on-disk format, registered by name. Each writes weights, then config.json."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from adaptgate.checkpoint.writer import atomic_write_text, save_tensors
from adaptgate.demo.master import Master, write_json
from adaptgate.demo.spec import DemoSpec
from adaptgate.formats import ascend, fp8_block, names
from adaptgate.formats import compressed_tensors as ct
from adaptgate.registry import Registry

if TYPE_CHECKING:
    import torch

FormatWriter = Callable[[Master, DemoSpec, Path], None]
FORMAT_REGISTRY: Registry[FormatWriter] = Registry("demo format")

CT_PRESETS = {
    "ct_fp8_channel": ct.PRESET_FP8_DYNAMIC,
    "ct_fp8_tensor": ct.PRESET_FP8,
    "ct_fp8_block": ct.PRESET_FP8_BLOCK,
    "ct_w8a8_int8": ct.PRESET_W8A8,
}


def _torch_dtype(name: str) -> torch.dtype:
    import torch

    dtype = getattr(torch, name)
    assert isinstance(dtype, torch.dtype)
    return dtype


@FORMAT_REGISTRY.register("bf16")
def write_bf16(master: Master, spec: DemoSpec, out: Path) -> None:
    save_tensors(master.tensors, out, shards=spec.shards)
    write_json(out / "config.json", master.config)


@FORMAT_REGISTRY.register("fp8_block")
def write_fp8_block(master: Master, spec: DemoSpec, out: Path) -> None:
    quantized = master.quantized_modules()
    scale_dtype = _torch_dtype(spec.weight_scale_dtype)
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in master.tensors.items():
        module = name.removesuffix(".weight")
        if name.endswith(".weight") and module in quantized:
            q, scale = fp8_block.quantize_fp8_block(
                tensor, spec.block_size, scale_dtype=scale_dtype, ue8m0=spec.ue8m0
            )
            tensors[name] = q
            tensors[f"{module}.{names.SCALE_INV}"] = scale
        else:
            tensors[name] = tensor
    save_tensors(tensors, out, shards=spec.shards)
    config = dict(master.config)
    config["quantization_config"] = fp8_block.quantization_config(
        spec.block_size, ue8m0=spec.ue8m0, modules_to_not_convert=list(master.not_convert)
    )
    write_json(out / "config.json", config)


def _write_compressed_tensors(master: Master, spec: DemoSpec, out: Path) -> None:
    preset = CT_PRESETS[spec.format]
    amax = None
    if preset == ct.PRESET_FP8:
        from adaptgate.demo.calibrate import input_amax

        amax = input_amax(master)
    linears = [
        ct.LinearInput(
            module=lin.module,
            weight=master.tensors[f"{lin.module}.weight"],
            bias=master.tensors.get(f"{lin.module}.bias"),
            quantize=master.quantized(lin),
        )
        for lin in master.layout.linears
    ]
    block = spec.block_size if preset == ct.PRESET_FP8_BLOCK else None
    compressed, compressor = ct.compress_linears(linears, preset, block=block, input_amax=amax)
    linear_modules = {lin.module for lin in master.layout.linears}
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in master.tensors.items():
        module, _, leaf = name.rpartition(".")
        if module not in linear_modules or leaf not in ("weight", "bias"):
            tensors[name] = tensor  # e.g. the router's e_score_correction_bias
        elif leaf == "weight":  # the weight, its scales, then the bias
            for suffix in ("weight", names.SCALE, ct.INPUT_SCALE_SUFFIX, "bias"):
                key = f"{module}.{suffix}"
                if key in compressed:
                    tensors[key] = compressed[key]
    save_tensors(tensors, out, shards=spec.shards)
    write_json(out / "config.json", master.config)
    compressor.update_config(str(out))  # the library merges its quantization_config


for _name in CT_PRESETS:
    FORMAT_REGISTRY.add(_name, _write_compressed_tensors)


@FORMAT_REGISTRY.register("w8a8_dynamic")
def write_w8a8_dynamic(master: Master, spec: DemoSpec, out: Path) -> None:
    import torch

    quantized = master.quantized_modules()
    tensors: dict[str, torch.Tensor] = {}
    types: dict[str, str] = {}
    for name, tensor in master.tensors.items():
        module, _, leaf = name.rpartition(".")
        if module in quantized and leaf == "weight":
            q, scale, offset = ascend.quantize_w8a8_dynamic(tensor)
            for key, value in (
                (name, q),
                (f"{module}.{names.SCALE}", scale),
                (f"{module}.{names.OFFSET}", offset),
            ):
                tensors[key] = value
                types[key] = ascend.W8A8_DYNAMIC
        elif module in quantized and leaf == "bias":
            tensors[name] = tensor.to(torch.float32)  # msModelSlim saves biases in float32
            types[name] = ascend.FLOAT
        else:
            tensors[name] = tensor
            types[name] = ascend.FLOAT
    save_tensors(tensors, out, shards=spec.shards, prefix=ascend.WEIGHTS_PREFIX, always_index=True)
    atomic_write_text(out / ascend.DESCRIPTION_FILE, ascend.description_text(types))
    write_json(out / "config.json", master.config)
