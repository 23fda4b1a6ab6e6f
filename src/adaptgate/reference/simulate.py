"""``--simulate w8a8-dynamic``: the decoder layers' Linears computed the way Ascend's
W8A8_DYNAMIC kernels compute them.

Each quantized Linear: weights int8 per output channel (symmetric, -127..127, the converter's
:func:`adaptgate.formats.ascend.quantize_w8a8_dynamic`; an Ascend checkpoint's own int8 weights
are reproduced exactly by it), activations int8 per token with a dynamic scale
(:func:`adaptgate.formats.ascend.quantize_per_token_dynamic`), the int8 x int8 product
accumulated exactly (in float64, exact for any realistic reduction length), then converted to
float32 and multiplied by both scales, as ``npu_quant_matmul`` dequantizes; bias added after.

Which Linears: every 2-D weight inside the decoder layers (per expert for fused MoE tensors),
except MoE routers (``*.gate.weight``, ``*shared_expert_gate*``), which msModelSlim leaves in
float; embeddings and the LM head are outside the layers and stay float. A checkpoint that
stores some layer weights unquantized (``modules_to_not_convert``) keeps them float.

Interception is a ``TorchFunctionMode`` on ``torch.nn.functional.linear`` active while decoder
layers run; the weight is recognised by its storage, so views (``experts.gate_up_proj[e]``)
are handled per expert.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from adaptgate.reference.skeleton import LayeredModel

SIMULATIONS = ("w8a8-dynamic",)
_ROUTER = re.compile(r"(^|\.)(gate|shared_expert_gate|router)(\.weight)?$")


def quantizable(param_name: str, ndim: int) -> bool:
    return ndim in (2, 3) and not _ROUTER.search(param_name)


def int8_linear(
    x: torch.Tensor,
    wq: torch.Tensor,
    w_scale: torch.Tensor,
    bias: torch.Tensor | None,
) -> torch.Tensor:
    """``x`` float ``[..., k]``; ``wq`` int8 ``[n, k]``; ``w_scale`` float32 ``[n, 1]``."""
    import torch

    from adaptgate.formats.ascend import quantize_per_token_dynamic

    xq, x_scale = quantize_per_token_dynamic(x)
    acc = torch.matmul(xq.to(torch.float64), wq.to(torch.float64).T)
    y = acc.to(torch.float32) * x_scale.to(torch.float32) * w_scale.to(torch.float32).reshape(-1)
    if bias is not None:
        y = y + bias.to(torch.float32)
    return y.to(x.dtype)


def _make_mode(lm: LayeredModel, float_params: set[str]) -> Any:
    import torch
    from torch.overrides import TorchFunctionMode

    from adaptgate.formats.ascend import quantize_w8a8_dynamic

    cache: dict[tuple[int, int, tuple[int, ...]], tuple[torch.Tensor, torch.Tensor]] = {}

    def owners() -> dict[int, str]:
        table = {}
        for name, p in lm.layers.named_parameters():
            if p.device.type != "meta" and quantizable(name, p.dim()):
                full = f"{lm.layer_path}.{name}"
                if full not in float_params:
                    table[p.untyped_storage().data_ptr()] = full
        return table

    class W8A8DynamicMode(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.table = owners()

        def __torch_function__(
            self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None
        ) -> Any:
            kwargs = kwargs or {}
            if func is torch.nn.functional.linear:
                x, weight = args[0], args[1] if len(args) > 1 else kwargs["weight"]
                bias = args[2] if len(args) > 2 else kwargs.get("bias")
                ptr = weight.untyped_storage().data_ptr()
                if ptr in self.table and weight.dim() == 2:
                    key = (ptr, weight.storage_offset(), tuple(weight.shape))
                    if key not in cache:
                        wq, ws, _ = quantize_w8a8_dynamic(weight.detach().to(torch.float32))
                        cache[key] = (wq, ws)
                    wq, ws = cache[key]
                    return int8_linear(x, wq, ws, bias)
            return func(*args, **kwargs)

    def clear() -> None:
        cache.clear()

    return W8A8DynamicMode, clear


class Simulation:
    """A context manager factory: ``with sim.active(): layer(...)``; ``reset()`` after a layer is
    freed (storage addresses are reused)."""

    def __init__(self, lm: LayeredModel, kind: str) -> None:
        from adaptgate.errors import UsageError

        if kind not in SIMULATIONS:
            raise UsageError(f"unknown simulation {kind!r}", fix=f"use {', '.join(SIMULATIONS)}")
        weights = lm.weights
        quantized_in_ckpt = set(weights.fp8) | set(weights.ascend)
        # A quantized checkpoint defines the quantized set: its float layer Linears stay float.
        float_params: set[str] = set()
        if quantized_in_ckpt:
            float_params = {
                n
                for n in weights.names
                if n.endswith(".weight") and n not in quantized_in_ckpt and n.count(".") > 2
            }
        self._mode_cls, self._clear = _make_mode(lm, float_params)

    def active(self) -> Any:
        return self._mode_cls()

    def reset(self) -> None:
        self._clear()
