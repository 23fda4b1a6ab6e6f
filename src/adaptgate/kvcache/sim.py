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

Decode steps always attend over the stored cache, the current token's own K/V included. The
prefill policy is per row, so the baseline and every format run in a single (left-padded) batch.

:func:`gqa_attention` runs a model with grouped-query attention done inside SDPA even under a
padding mask: transformers' ``sdpa`` attention copies the cache ``n_rep`` times per layer per
step (``repeat_kv``) whenever a mask is given: 14% of the gate's time (profiled). SDPA's
own head grouping runs the same kernel on the same numbers (bit-identical on the CPU, tested).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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

GQA_ATTENTION = "adaptgate_sdpa_gqa"


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
    """A DynamicCache whose row ``r`` is stored through ``arms[r]``. Its full-attention layers
    append into a buffer with room to grow (doubled when full) and hand out views of it:
    DynamicLayer's ``torch.cat`` allocated the whole cache afresh per layer per decode step
    (on the demo model a quarter of a 15-row step at 170 tokens, profiled). The values are the
    same. Sliding-window layers are transformers' own."""
    import torch
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    arms = list(arms)
    fresh = [a is None or a.prefill == "fresh" for a in arms]
    groups: dict[int, tuple[Arm, torch.Tensor]] = {}  # rows sharing an arm are done at once
    for arm in arms:
        if arm is not None:
            rows = [i for i, a in enumerate(arms) if a is arm]
            groups.setdefault(id(arm), (arm, torch.tensor(rows, dtype=torch.long)))

    class AppendLayer(DynamicLayer):
        buffers: tuple[torch.Tensor, torch.Tensor] | None = None

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, *_: Any, **__: Any
        ) -> tuple[torch.Tensor, torch.Tensor]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            start = self.get_seq_length()
            end = start + key_states.shape[-2]
            if not self._room_for(start, end):
                room = max(end, 2 * start)
                k = key_states.new_empty(*key_states.shape[:-2], room, key_states.shape[-1])
                v = value_states.new_empty(*value_states.shape[:-2], room, value_states.shape[-1])
                if start and self.keys is not None and self.values is not None:
                    k[..., :start, :], v[..., :start, :] = self.keys, self.values
                self.buffers = k, v
            assert self.buffers is not None
            k, v = self.buffers
            k[..., start:end, :], v[..., start:end, :] = key_states, value_states
            self.keys, self.values = k[..., :end, :], v[..., :end, :]
            return self.keys, self.values

        def _room_for(self, start: int, end: int) -> bool:
            """The buffers hold the cache so far (``keys`` is still a view of them: not after
            a reset or a batch reorder) and have room up to ``end``."""
            if start == 0 or self.buffers is None or end > self.buffers[0].shape[-2]:
                return False
            data = self.buffers[0].untyped_storage().data_ptr()
            return self.keys is not None and self.keys.untyped_storage().data_ptr() == data

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

    cache = SimCache(config=config)
    cache.layers = [AppendLayer() if type(x) is DynamicLayer else x for x in cache.layers]
    return cache


def sdpa_gqa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' ``sdpa`` attention, except that under a boolean mask the KV heads are
    shared by SDPA itself (``enable_gqa``) rather than copied by ``repeat_kv``. Anything else
    (no mask, no head groups, dropout, a position bias) goes to transformers' function."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    plain = (
        attention_mask is None
        or attention_mask.dtype != torch.bool
        or getattr(module, "num_key_value_groups", 1) == 1
        or kwargs.get("dropout", 0.0)
        or kwargs.get("position_bias") is not None
        or kwargs.get("cache") is not None
    )
    if plain:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    # with a mask transformers passes is_causal=False: the mask holds the causal pattern
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, scale=kwargs.get("scaling"), enable_gqa=True
    )
    return out.transpose(1, 2).contiguous(), None


@contextmanager
def gqa_attention(model: Any) -> Iterator[None]:
    """Runs ``model`` with :func:`sdpa_gqa_attention` inside the block when it uses ``sdpa``
    (its masks stay sdpa's); other attention implementations are left alone."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    old = model.config.get_text_config()._attn_implementation
    if old != "sdpa":
        yield
        return
    AttentionInterface.register(GQA_ATTENTION, sdpa_gqa_attention)
    AttentionMaskInterface.register(GQA_ATTENTION, sdpa_mask)
    model.set_attn_implementation(GQA_ATTENTION)
    try:
        yield
    finally:
        model.set_attn_implementation(old)
