"""compressed-tensors FP8 presets, produced with the compressed-tensors library itself.

The quantize side mirrors what llm-compressor does for a model: build ``torch.nn.Linear``
modules under their checkpoint names, ``apply_quantization_config`` with a preset scheme
(FP8 = per-tensor weight scale + static per-tensor input scale; FP8_DYNAMIC = per-channel
weight scale ``[out, 1]`` + dynamic per-token activations; FP8_BLOCK = ``[ceil(out/bn),
ceil(in/bk)]`` weight scales + dynamic per-group activations), fill the scales the way a
memoryless min-max observer does (min/max per strategy, then the library's
``calculate_qparams``), then ``ModelCompressor.from_pretrained_model(...).compress_model``.
The ignore list in the resulting config is the library's own (every Linear left unquantized).
Scales have the weight's dtype (bf16), as the library initializes them.

:func:`int8_quantization_config` is the library's W8A8 config for a checkpoint quantized
elsewhere (``adaptgate convert --to w8a8-dynamic --format compressed-tensors``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from compressed_tensors.compressors.model_compressors.model_compressor import (
        ModelCompressor,
    )
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

QUANT_METHOD = "compressed-tensors"
FORMAT_FLOAT = "float-quantized"
INPUT_SCALE_SUFFIX = "input_scale"
K_SCALE_SUFFIX = "self_attn.k_scale"
V_SCALE_SUFFIX = "self_attn.v_scale"
PRESET_FP8 = "FP8"
PRESET_FP8_DYNAMIC = "FP8_DYNAMIC"
PRESET_FP8_BLOCK = "FP8_BLOCK"
# int8 channel-wise symmetric weights, dynamic per-token int8 activations: what vllm-ascend
# detects as W8A8_DYNAMIC and vLLM CPU serves with its int8 kernels
PRESET_W8A8 = "W8A8"
PRESETS = (PRESET_FP8, PRESET_FP8_DYNAMIC, PRESET_FP8_BLOCK, PRESET_W8A8)


@dataclass(frozen=True)
class LinearInput:
    """One Linear of the checkpoint: its module name, weight, optional bias, and whether the
    scheme applies to it (False: it stays in the model dtype and lands in ``ignore``)."""

    module: str
    weight: torch.Tensor
    bias: torch.Tensor | None
    quantize: bool


def make_scheme(preset: str, block: tuple[int, int] | None = None) -> QuantizationScheme:
    """The library's preset scheme targeting ``Linear``; ``block`` overrides FP8_BLOCK's
    128x128 weight blocks (and sets the activation group size to the block's K width)."""
    from compressed_tensors.quantization import QuantizationStrategy, preset_name_to_scheme

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    scheme = preset_name_to_scheme(preset, ["Linear"])
    weights = scheme.weights
    if block is not None and weights is not None and weights.strategy == QuantizationStrategy.BLOCK:
        weights.block_structure = [int(block[0]), int(block[1])]
        if scheme.input_activations is not None:
            scheme.input_activations.group_size = int(block[1])
    return scheme


def int8_quantization_config(ignore: Sequence[str]) -> dict[str, Any]:
    """The ``quantization_config`` of a compressed W8A8 checkpoint (the library's preset: int8
    channel weights, dynamic per-token int8 activations) that quantizes every Linear but those
    in ``ignore``: the library's own models, laid out as its ``ModelCompressor.update_config``
    writes them into config.json."""
    import compressed_tensors
    from compressed_tensors.base import (
        COMPRESSION_VERSION_NAME,
        QUANTIZATION_METHOD,
        QUANTIZATION_METHOD_NAME,
        SPARSITY_CONFIG_NAME,
        TRANSFORM_CONFIG_NAME,
    )
    from compressed_tensors.config import CompressionFormat
    from compressed_tensors.quantization import QuantizationConfig, QuantizationStatus

    scheme = make_scheme(PRESET_W8A8)
    scheme.format = CompressionFormat.int_quantized.value  # as compress_model records it
    config = QuantizationConfig(
        config_groups={"group_0": scheme},
        ignore=list(ignore),
        format=CompressionFormat.int_quantized.value,
        quantization_status=QuantizationStatus.COMPRESSED,
    )
    return {
        COMPRESSION_VERSION_NAME: compressed_tensors.__version__,
        QUANTIZATION_METHOD_NAME: QUANTIZATION_METHOD,
        SPARSITY_CONFIG_NAME: {},
        TRANSFORM_CONFIG_NAME: {},
        **config.model_dump(mode="json", exclude={"quant_method"}),
    }


def weight_min_max(
    weight: torch.Tensor, args: QuantizationArgs
) -> tuple[torch.Tensor, torch.Tensor]:
    """Min and max of the weight per quantization group of ``args.strategy`` (in its dtype)."""
    from compressed_tensors.quantization import QuantizationStrategy
    from compressed_tensors.quantization.utils import maybe_pad_tensor_for_block_quant

    w = weight.detach()
    if args.strategy == QuantizationStrategy.TENSOR:
        return w.amin().reshape(1), w.amax().reshape(1)
    if args.strategy == QuantizationStrategy.CHANNEL:
        return w.amin(dim=1, keepdim=True), w.amax(dim=1, keepdim=True)
    if args.strategy == QuantizationStrategy.BLOCK:
        assert args.block_structure is not None
        bn, bk = args.block_structure
        padded = maybe_pad_tensor_for_block_quant(w, tuple(args.block_structure))
        blocks = padded.reshape(padded.shape[0] // bn, bn, padded.shape[1] // bk, bk)
        return blocks.amin(dim=(1, 3)), blocks.amax(dim=(1, 3))
    raise ValueError(f"unsupported weight strategy {args.strategy}")


def _param(module: torch.nn.Module, name: str) -> torch.Tensor:
    import torch

    value = getattr(module, name)
    assert isinstance(value, torch.Tensor)
    return value


def _fill(module: torch.nn.Module, name: str, value: torch.Tensor) -> None:
    """Copies ``value`` into the qparam the library registered, in that parameter's dtype."""
    param = _param(module, name)
    param.data.copy_(value.to(param.dtype))


def observe_weight(module: torch.nn.Module, args: QuantizationArgs) -> None:
    """Fills ``module.weight_scale`` (and a zero point, if any) from the weight."""
    from compressed_tensors.quantization.utils import calculate_qparams

    low, high = weight_min_max(_param(module, "weight"), args)
    scale, zero_point = calculate_qparams(low, high, args)
    _fill(module, "weight_scale", scale)
    if hasattr(module, "weight_zero_point"):
        _fill(module, "weight_zero_point", zero_point)


def observe_input(module: torch.nn.Module, args: QuantizationArgs, amax: float) -> None:
    """Fills the static per-tensor ``module.input_scale`` from a calibrated |x| maximum."""
    import torch
    from compressed_tensors.quantization.utils import calculate_qparams

    high = torch.tensor([float(amax)], dtype=torch.float32)
    scale, zero_point = calculate_qparams(-high, high, args)
    _fill(module, "input_scale", scale)
    if hasattr(module, "input_zero_point"):
        _fill(module, "input_zero_point", zero_point)


def _attach(root: torch.nn.Module, dotted: str, leaf: torch.nn.Module) -> None:
    import torch

    parent = root
    *path, last = dotted.split(".")
    for part in path:
        child = getattr(parent, part, None)
        if child is None:
            child = torch.nn.Module()
            parent.add_module(part, child)
        parent = child
    parent.add_module(last, leaf)


def _linear(item: LinearInput) -> torch.nn.Linear:
    import torch

    out_f, in_f = item.weight.shape
    lin = torch.nn.Linear(in_f, out_f, bias=item.bias is not None, device="meta")
    lin.weight = torch.nn.Parameter(item.weight.detach().clone(), requires_grad=False)
    if item.bias is not None:
        lin.bias = torch.nn.Parameter(item.bias.detach().clone(), requires_grad=False)
    return lin


def compress_linears(
    linears: Sequence[LinearInput],
    preset: str,
    *,
    block: tuple[int, int] | None = None,
    input_amax: Mapping[str, float] | None = None,
) -> tuple[dict[str, torch.Tensor], ModelCompressor]:
    """Quantizes and compresses the Linears with the library; returns the compressed tensors
    (``<module>.weight``, ``.weight_scale``, ``.input_scale``, ``.bias`` ...) and the
    compressor, whose ``update_config(dir)`` writes the ``quantization_config``."""
    from loguru import logger

    scheme = make_scheme(preset, block)
    # The library warns (via loguru) about block shapes that do not divide; the demo's
    # non-divisible models are meant to have them.
    logger.disable("compressed_tensors")
    try:
        return _compress(linears, scheme, input_amax)
    finally:
        logger.enable("compressed_tensors")


def _compress(
    linears: Sequence[LinearInput],
    scheme: QuantizationScheme,
    input_amax: Mapping[str, float] | None,
) -> tuple[dict[str, torch.Tensor], ModelCompressor]:
    import torch
    from compressed_tensors.compressors.base import compress_module
    from compressed_tensors.compressors.model_compressors.model_compressor import (
        ModelCompressor,
    )
    from compressed_tensors.quantization import (
        QuantizationConfig,
        QuantizationStatus,
        apply_quantization_config,
    )
    from compressed_tensors.quantization.utils.helpers import is_module_quantized

    root = torch.nn.Module()
    for item in linears:
        _attach(root, item.module, _linear(item))
    ignore = [item.module for item in linears if not item.quantize]
    config = QuantizationConfig(
        config_groups={"group_0": scheme},
        ignore=ignore,
        quantization_status=QuantizationStatus.INITIALIZED,
    )
    apply_quantization_config(root, config)
    for item in linears:
        if not item.quantize:
            continue
        module = root.get_submodule(item.module)
        assert scheme.weights is not None
        observe_weight(module, scheme.weights)
        acts = scheme.input_activations
        if acts is not None and not acts.dynamic:
            if input_amax is None or item.module not in input_amax:
                raise ValueError(f"static input scale needs a calibrated amax for {item.module}")
            observe_input(module, acts, input_amax[item.module])
    compressor = ModelCompressor.from_pretrained_model(root)
    # compress_model's own loop, without its progress bar: the library's compress_module on
    # every quantized module, then the config status it sets.
    for _, module in root.named_modules():
        if is_module_quantized(module):
            compress_module(module, compressor.force_compression_format)
    assert compressor.quantization_config is not None
    compressor.quantization_config.quantization_status = QuantizationStatus.COMPRESSED
    tensors = {name: t.detach() for name, t in root.state_dict().items()}
    return tensors, compressor


def quantize_linear(
    weight: torch.Tensor,
    preset: str,
    *,
    block: tuple[int, int] | None = None,
    input_amax: float | None = None,
) -> dict[str, torch.Tensor]:
    """One Linear through :func:`compress_linears`: returns its compressed local tensors
    (``weight``, ``weight_scale``, and ``input_scale`` for the static preset)."""
    amax = {"layer": input_amax} if input_amax is not None else None
    tensors, _ = compress_linears(
        [LinearInput("layer", weight, None, True)], preset, block=block, input_amax=amax
    )
    return {name.removeprefix("layer."): t for name, t in tensors.items()}
