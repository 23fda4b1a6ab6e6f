"""llama.cpp tensor names -> Hugging Face Llama names, and the Q/K row permutation.

llama.cpp's ``convert_hf_to_gguf.py`` (``LlamaModel.permute``) reorders the rows of q_proj and
k_proj inside each head from Hugging Face's rotate-half layout to interleaved pairs:
``w.reshape(n, 2, d // 2, in).swapaxes(1, 2)`` with ``n`` the query heads for q and the key/value
heads for k. :func:`unpermute_qk` is its inverse.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from adaptgate.errors import CheckpointFormatError

if TYPE_CHECKING:
    import numpy as np

TOP_LEVEL = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
LAYER_LEAVES = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_LAYER = re.compile(r"blk\.(\d+)\.([a-z_]+)\.weight")


def hf_name(gguf_name: str, layers: int) -> str:
    """The Hugging Face name of a llama GGUF tensor; unknown names raise one line."""
    if gguf_name in TOP_LEVEL:
        return TOP_LEVEL[gguf_name]
    match = _LAYER.fullmatch(gguf_name)
    if match is None or match.group(2) not in LAYER_LEAVES or int(match.group(1)) >= layers:
        raise CheckpointFormatError(
            f"GGUF tensor {gguf_name!r} is not part of a {layers}-layer llama model",
            fix="use a plain llama GGUF (no biases, experts or extra tensors)",
        )
    return f"model.layers.{int(match.group(1))}.{LAYER_LEAVES[match.group(2)]}.weight"


def qk_heads(gguf_name: str, heads: int, kv_heads: int) -> int | None:
    """The head count llama.cpp permuted this tensor's rows with, or None (not q/k)."""
    if gguf_name.endswith(".attn_q.weight"):
        return heads
    if gguf_name.endswith(".attn_k.weight"):
        return kv_heads
    return None


def _half_head(w: np.ndarray, n_head: int) -> int:
    rows = w.shape[0]
    if n_head < 1 or rows % (2 * n_head):
        raise CheckpointFormatError(f"{rows} q/k rows do not split into {n_head} heads of pairs")
    return rows // n_head // 2


def permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's permutation (Hugging Face rows -> GGUF rows); the inverse of unpermute_qk."""
    half = _half_head(w, n_head)
    return w.reshape(n_head, 2, half, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """GGUF rows -> Hugging Face rows for q_proj (``n_head`` query heads) or k_proj (key/value
    heads). A reshuffle: the values are not touched."""
    half = _half_head(w, n_head)
    return w.reshape(n_head, half, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
