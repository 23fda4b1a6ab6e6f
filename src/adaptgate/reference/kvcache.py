"""The KV cache a reference forward writes to: transformers' DynamicCache by default; the kvcache
gate's simulation passes its own factory (quantize-dequantize on write, after rotary embedding,
where serving engines quantize their cache).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import Cache, PretrainedConfig


CacheFactory = Callable[["PretrainedConfig"], "Cache"]


def dynamic_cache(config: PretrainedConfig) -> Cache:
    """The default: transformers' DynamicCache, exactly what ``model.generate`` uses."""
    from transformers import DynamicCache

    return DynamicCache(config=config)
