"""The KV-cache gate: will an FP8 or INT8 KV cache break this model?

Each cache format is simulated exactly where the engines quantize -- keys after rotary
embedding and values, written to the cache with the engine's scaling and read back for
attention (:mod:`.formats`, :mod:`.sim`) -- on the precision gate's CPU reference. Long greedy
generations and teacher-forced steps are compared with the unquantized cache (:mod:`.run`),
an outlier scan names the layers whose K/V the format cannot hold (:mod:`.scan`), and each
format gets SAFE / RISKY / UNSAFE with the measured reasons (:mod:`.verdict`) and the flag to
use. Calibrated scales are written in the names vLLM and msModelSlim C8 read (:mod:`.scales`).

Models that do not fit in memory are measured teacher-forced only (``--mode teacher-forced``,
the default when the model does not fit): every format and the baseline along long forced texts
in one layer-by-layer pass over the weights, streamed (:mod:`.forced`); degeneration, which needs
free-running decoding, is then reported as not measured and no format is SAFE without the engine.

``run_kvcache(KVCacheConfig(model=...))`` is the one call (:mod:`.api`). Importing this package
does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adaptgate.kvcache.api import run_kvcache
    from adaptgate.kvcache.models import KVCacheConfig, KVCacheResult

__all__ = ["KVCacheConfig", "KVCacheResult", "run_kvcache"]


def __getattr__(name: str) -> Any:
    if name in ("KVCacheConfig", "run_kvcache"):
        from adaptgate.kvcache import api

        return getattr(api, name)
    if name == "KVCacheResult":
        from adaptgate.kvcache.models import KVCacheResult

        return KVCacheResult
    raise AttributeError(name)
