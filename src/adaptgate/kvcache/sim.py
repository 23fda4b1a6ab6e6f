"""The simulated cache: K/V quantized where the engines quantize them, per batch row.

transformers' attention computes K and V, applies rotary embedding to K and calls
``past_key_values.update(k, v, layer_idx)``; it attends over what ``update`` returns. That is
the engines' cache write: vLLM's ``reshape_and_cache_flash`` and vllm-ascend's
``_quantize_kv_to_int8`` receive the keys after rotary embedding. :class:`SimCache` stores
each row's K/V quantize-dequantized by that row's :class:`Arm` (None: the unquantized
baseline) and returns, during prefill, per the arm's prefill mode:

- ``cache`` (vLLM V1: FlashAttention, FlashInfer and Triton write the cache first and attend
  over it, prompt tokens included): the stored, quantized K/V;
- ``fresh`` (vllm-ascend C8 PrefillNoCache; also vLLM's pre-V1 backends): the fresh K/V.

Decode steps always attend over the stored cache, the current token's own K/V included. Rows
of one batch share the prompt, so no padding is ever needed. (The reference's
``InterceptingCache`` has one prefill policy per cache; this one has one per row, so the
baseline and every format run in a single batch.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from adaptgate.kvcache.formats import (
    PrefillMode,
    channel_view,
    dequantize_c8,
    dequantize_fp8,
    quantize_c8,
    quantize_fp8,
)
from adaptgate.kvcache.scales import ScaleSet

if TYPE_CHECKING:
    import torch
    from transformers import Cache, PretrainedConfig

# observer(layer_idx, key, value, prefill): the raw (pre-quantization) batch K/V
Observer = Callable[[int, "torch.Tensor", "torch.Tensor", bool], None]


@dataclass
class Arm:
    """One simulated cache: a format with its scales and prefill mode. ``param_dtype`` is the
    dtype the engine holds C8 scales in (the model dtype)."""

    scales: ScaleSet
    prefill: PrefillMode
    kv_heads: int
    head_dim: int
    param_dtype: torch.dtype | None = None

    @property
    def name(self) -> str:
        return self.scales.format.name

    def roundtrip(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What the cache gives back for ``k``/``v`` (``[..., kv_heads, tokens, head_dim]``)."""
        fmt, s = self.scales.format, self.scales.layers[layer]
        if fmt.is_fp8:
            kq = dequantize_fp8(quantize_fp8(k, s.k, fmt), s.k, k.dtype)
            vq = dequantize_fp8(quantize_fp8(v, s.v, fmt), s.v, v.dtype)
            return kq, vq
        assert s.k_offset is not None and s.v_offset is not None
        h, d, pd = self.kv_heads, self.head_dim, self.param_dtype
        out = []
        for x, sc, off in ((k, s.k, s.k_offset), (v, s.v, s.v_offset)):
            sc_v, off_v = channel_view(sc, h, d), channel_view(off, h, d)
            q = quantize_c8(x, sc_v, off_v, param_dtype=pd)
            out.append(dequantize_c8(q, sc_v, off_v, param_dtype=pd, out_dtype=x.dtype))
        return out[0], out[1]


def sim_cache(
    config: PretrainedConfig, arms: Sequence[Arm | None], observer: Observer | None = None
) -> Cache:
    """A DynamicCache whose row ``r`` is stored through ``arms[r]``."""
    import torch
    from transformers import DynamicCache

    arms = list(arms)
    fresh = [a is None or a.prefill == "fresh" for a in arms]
    groups: dict[int, tuple[Arm, torch.Tensor]] = {}  # rows sharing an arm are done at once
    for arm in arms:
        if arm is not None:
            rows = [i for i, a in enumerate(arms) if a is arm]
            groups.setdefault(id(arm), (arm, torch.tensor(rows, dtype=torch.long)))

    class SimCache(DynamicCache):
        def update(
            self,
            key_states: torch.Tensor,
            value_states: torch.Tensor,
            layer_idx: int,
            *args: Any,
            **kwargs: Any,
        ) -> tuple[torch.Tensor, torch.Tensor]:
            if key_states.shape[0] != len(arms):
                raise RuntimeError(f"batch of {key_states.shape[0]} rows for {len(arms)} arms")
            prefill = self.get_seq_length(layer_idx) == 0
            if observer is not None:
                observer(layer_idx, key_states, value_states, prefill)
            k_store, v_store = key_states, value_states
            if groups:
                k_store, v_store = key_states.clone(), value_states.clone()
                for arm, rows in groups.values():
                    kq, vq = arm.roundtrip(layer_idx, key_states[rows], value_states[rows])
                    k_store[rows], v_store[rows] = kq, vq
            keys, values = super().update(k_store, v_store, layer_idx, *args, **kwargs)
            if prefill and any(fresh) and not all(fresh):
                mask = torch.tensor(fresh, device=keys.device).view(-1, 1, 1, 1)
                return torch.where(mask, key_states, keys), torch.where(mask, value_states, values)
            if prefill and all(fresh):
                return key_states, value_states
            return keys, values

    return SimCache(config=config)
