"""Where attention's keys and values can be intercepted: the KV cache the forward writes to.

transformers' attention computes K and V, applies rotary embedding to K, then calls
``past_key_values.update(k, v, layer_idx)`` and attends over what ``update`` returns. That is
exactly where serving engines quantize their cache, so a cache class is the interception point:
:class:`InterceptingCache` hands every K/V write to a :class:`KVInterceptor` (which may observe
it, or return a quantize-dequantized copy to store) and then stores the result.

Prefill follows vLLM: the prompt's attention uses the freshly computed K/V (the engine attends
before reading back from the cache), while decode steps attend over the stored (possibly
quantized) cache. ``attend_fresh_in_prefill=False`` makes prefill attend over the stored values
too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch
    from transformers import Cache, PretrainedConfig


class KVInterceptor(Protocol):
    def __call__(
        self, layer_idx: int, key: torch.Tensor, value: torch.Tensor, *, prefill: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``key``/``value``: ``[batch, kv_heads, tokens, head_dim]``, key after rotary
        embedding. Returns the tensors to store in the cache."""
        ...


CacheFactory = Callable[["PretrainedConfig"], "Cache"]


def dynamic_cache(config: PretrainedConfig) -> Cache:
    """The default: transformers' DynamicCache, exactly what ``model.generate`` uses."""
    from transformers import DynamicCache

    return DynamicCache(config=config)


def intercepting_cache_factory(
    interceptor: KVInterceptor, *, attend_fresh_in_prefill: bool = True
) -> CacheFactory:
    """A cache factory whose caches pass every K/V write through ``interceptor``."""
    from transformers import DynamicCache

    class InterceptingCache(DynamicCache):
        def update(
            self,
            key_states: torch.Tensor,
            value_states: torch.Tensor,
            layer_idx: int,
            *args: Any,
            **kwargs: Any,
        ) -> tuple[torch.Tensor, torch.Tensor]:
            prefill = self.get_seq_length(layer_idx) == 0
            key, value = interceptor(layer_idx, key_states, value_states, prefill=prefill)
            keys, values = super().update(key, value, layer_idx, *args, **kwargs)
            if prefill and attend_fresh_in_prefill:
                return key_states, value_states
            return keys, values

    def factory(config: PretrainedConfig) -> Cache:
        return InterceptingCache(config=config)

    return factory
