"""Device kernels adaptgate ships into a serving engine, each with its unfused reference.

- ``qk_rmsnorm`` (qk_rmsnorm.py): seed 002's fused per-head q/k RMSNorm after ``qkv_proj`` as a
  Triton kernel, with ``qk_rmsnorm_reference``, the unfused torch path.
- ``vllm_plugin.register`` (vllm_plugin.py): the vLLM general plugin (entry point group
  ``vllm.general_plugins``) that swaps the kernel into Qwen3 / Qwen3-MoE attention when
  ``ADAPTGATE_QK_RMSNORM=1`` -- the variable ``adaptgate plan`` sets where the release has no
  fused q/k-norm of its own.

Importing this package imports neither torch nor Triton: Triton (``triton`` on GPUs,
``triton-ascend`` on NPUs, ``TRITON_INTERPRET=1`` on the CPU) is imported the first time a kernel
runs, so adaptgate and the vLLM CPU build work without it. The package depends on nothing of
adaptgate but ``errors``, so the plugin can be installed into an engine image with ``--no-deps``.
"""

from __future__ import annotations

import importlib
from typing import Any

# The switch the plan sets and the plugin reads (one name for both sides).
from adaptgate.settings import QK_RMSNORM as QK_RMSNORM_ENV

_EXPORTS = {
    "qk_rmsnorm": "adaptgate.kernels.qk_rmsnorm",
    "qk_rmsnorm_reference": "adaptgate.kernels.qk_rmsnorm",
    "triton_available": "adaptgate.kernels.qk_rmsnorm",
    "register": "adaptgate.kernels.vllm_plugin",
}

__all__ = ["QK_RMSNORM_ENV", "qk_rmsnorm", "qk_rmsnorm_reference", "register", "triton_available"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(name)
    return getattr(importlib.import_module(_EXPORTS[name]), name)
