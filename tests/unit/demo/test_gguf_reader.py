"""adaptgate.demo.gguf on tiny llama GGUF files written here with the gguf library: names, the
Q/K row permutation against llama.cpp's formula, metadata and refusals (one line each)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from adaptgate.demo.gguf.config import float32_repr
from adaptgate.demo.gguf.names import hf_name, permute_qk, unpermute_qk
from adaptgate.demo.spec import make_spec
from adaptgate.errors import CheckpointFormatError, UsageError


def llamacpp_permute(w: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.py, LlamaModel.permute, written out independently."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


@pytest.mark.parametrize(("rows", "heads"), [(576, 9), (192, 3), (8, 2), (128, 1)])
def test_unpermute_inverts_llamacpp_permute(rows, heads):
    rng = np.random.default_rng(rows)
    hf = rng.standard_normal((rows, 5))
    gguf_rows = llamacpp_permute(hf, heads, None)
    assert not np.array_equal(gguf_rows, hf)  # the permutation is not the identity
    assert np.array_equal(unpermute_qk(gguf_rows, heads), hf)
    assert np.array_equal(permute_qk(hf, heads), gguf_rows)
    # element by element: GGUF row h*d + 2*i + j holds Hugging Face row h*d + j*d/2 + i
    d = rows // heads
    back = unpermute_qk(gguf_rows, heads)
    for h in range(heads):
        for i in range(d // 2):
            for j in (0, 1):
                assert np.array_equal(back[h * d + j * d // 2 + i], gguf_rows[h * d + 2 * i + j])


def test_k_uses_kv_heads_like_llamacpp():
    k = np.random.default_rng(0).standard_normal((192, 4))
    assert np.array_equal(llamacpp_permute(k, 9, 3), permute_qk(k, 3))
    assert not np.array_equal(permute_qk(k, 6), permute_qk(k, 3))  # the head count matters


def test_names():
    assert hf_name("token_embd.weight", 30) == "model.embed_tokens.weight"
    assert hf_name("output_norm.weight", 30) == "model.norm.weight"
    assert hf_name("output.weight", 30) == "lm_head.weight"
    expect = {
        "attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
        "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
        "ffn_norm": "post_attention_layernorm", "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
    }  # fmt: skip
    for leaf, name in expect.items():
        assert hf_name(f"blk.29.{leaf}.weight", 30) == f"model.layers.29.{name}.weight"
    for bad in ("blk.30.attn_q.weight", "blk.0.attn_q.bias", "blk.0.attn_qkv.weight",
                "rope_freqs.weight", "blk.x.attn_q.weight"):  # fmt: skip
        with pytest.raises(CheckpointFormatError) as err:
            hf_name(bad, 30)
        assert bad in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("stored", "written"),
    [(9.999999747378752e-06, 1e-05), (100000.0, 100000.0), (1e-6, 1e-06), (0.1, 0.1)],
)
def test_float32_repr(stored, written):
    f32 = float(np.float32(stored))
    assert float32_repr(f32) == written
    assert np.float32(written) == np.float32(f32)


# ---- tiny GGUF files ---------------------------------------------------------------------------

HIDDEN, HEADS, KV_HEADS, INTER, LAYERS = 8, 2, 1, 12, 2
TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "c", "Ġ", "ab", "Ġa", "1"]


@dataclass
class Tiny:
    """What to write; tests change one thing to see it refused."""

    arch: str = "llama"
    pre: str = "smollm"
    token_types: list[int] = field(default_factory=lambda: [3, 3, 3] + [1] * (len(TOKENS) - 3))
    extra_kv: dict[str, Any] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    add: dict[str, np.ndarray] = field(default_factory=dict)
    q_rows: int = HIDDEN


def hf_tensors(q_rows: int = HIDDEN) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    kv = HIDDEN // HEADS * KV_HEADS
    out = {"model.embed_tokens.weight": rng.standard_normal((len(TOKENS), HIDDEN))}
    for i in range(LAYERS):
        p = f"model.layers.{i}"
        shapes = {
            "input_layernorm": (HIDDEN,), "self_attn.q_proj": (q_rows, HIDDEN),
            "self_attn.k_proj": (kv, HIDDEN), "self_attn.v_proj": (kv, HIDDEN),
            "self_attn.o_proj": (HIDDEN, HIDDEN), "post_attention_layernorm": (HIDDEN,),
            "mlp.gate_proj": (INTER, HIDDEN), "mlp.up_proj": (INTER, HIDDEN),
            "mlp.down_proj": (HIDDEN, INTER),
        }  # fmt: skip
        for leaf, shape in shapes.items():
            out[f"{p}.{leaf}.weight"] = rng.standard_normal(shape)
    out["model.norm.weight"] = rng.standard_normal((HIDDEN,))
    return {k: v.astype(np.float32) for k, v in out.items()}


GGUF_LEAF = {
    "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}  # fmt: skip


def gguf_name(name: str) -> str:
    top = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
    }
    if name in top:
        return top[name]
    _, _, layer, rest = name.split(".", 3)
    return f"blk.{layer}.{GGUF_LEAF[rest.removesuffix('.weight')]}.weight"


def write_tiny(path: Path, tiny: Tiny) -> dict[str, np.ndarray]:
    import gguf

    hf = hf_tensors(tiny.q_rows)
    w = gguf.GGUFWriter(path, tiny.arch)
    w.add_string("general.name", "tiny")
    a = tiny.arch
    w.add_uint32(f"{a}.block_count", LAYERS)
    w.add_uint32(f"{a}.context_length", 64)
    w.add_uint32(f"{a}.embedding_length", HIDDEN)
    w.add_uint32(f"{a}.feed_forward_length", INTER)
    w.add_uint32(f"{a}.attention.head_count", HEADS)
    w.add_uint32(f"{a}.attention.head_count_kv", KV_HEADS)
    w.add_float32(f"{a}.rope.freq_base", 100000.0)
    w.add_float32(f"{a}.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_uint32(f"{a}.vocab_size", len(TOKENS))
    for key, value in tiny.extra_kv.items():
        w.add_string(key, value)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(tiny.pre)
    w.add_token_list(TOKENS)
    w.add_token_types(tiny.token_types)
    w.add_token_merges(["a b", "Ġ a"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_pad_token_id(2)
    w.add_add_bos_token(False)
    w.add_chat_template("{{ messages[0]['content'] }}")
    for name, value in hf.items():
        stored = value
        if name.endswith("q_proj.weight"):
            stored = llamacpp_permute(value, HEADS, HEADS)
        elif name.endswith("k_proj.weight"):
            stored = llamacpp_permute(value, HEADS, KV_HEADS)
        if gguf_name(name) not in tiny.drop:
            w.add_tensor(gguf_name(name), np.ascontiguousarray(stored))
    for name, value in tiny.add.items():
        w.add_tensor(name, value)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return hf


def master_of(path: Path):
    from adaptgate.demo.gguf.reader import open_llama_gguf
    from adaptgate.demo.smollm2 import master_from_gguf

    return master_from_gguf(open_llama_gguf(path), make_spec(source="smollm2"))


def test_tiny_gguf_round_trip(smollm2_gguf, tmp_path):
    path = tmp_path / "tiny.gguf"
    hf = write_tiny(path, Tiny())
    master = master_of(path)
    assert list(master.tensors) == [t.name for t in master.layout.tensors]
    assert set(master.tensors) == set(hf)  # tied: no lm_head; llama: no q_norm / k_norm
    for name, value in hf.items():
        expected = torch.from_numpy(value).to(torch.bfloat16)
        assert master.tensors[name].dtype == torch.bfloat16
        assert torch.equal(master.tensors[name].view(torch.int16), expected.view(torch.int16)), name
    cfg = master.config
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"],
            cfg["num_key_value_heads"], cfg["head_dim"], cfg["intermediate_size"]) == (
            LAYERS, HIDDEN, HEADS, KV_HEADS, HIDDEN // HEADS, INTER)  # fmt: skip
    assert cfg["rms_norm_eps"] == 1e-05 and cfg["rope_theta"] == 100000.0
    assert cfg["tie_word_embeddings"] is True and cfg["max_position_embeddings"] == 64
    assert master.generation_config["eos_token_id"] == 2
    assert set(master.quantized_modules()) == {
        f"model.layers.{i}.{m}" for i in range(LAYERS) for m in
        ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
         "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
    }  # fmt: skip


@pytest.mark.parametrize(
    ("tiny", "message"),
    [
        (Tiny(arch="qwen2"), "architecture 'qwen2' is not supported"),
        (Tiny(pre="llama3"), "pre-tokenizer 'llama3' is not supported"),
        (Tiny(token_types=[3, 3, 3, 4] + [1] * (len(TOKENS) - 4)), "token type 4"),
        (Tiny(extra_kv={"llama.rope.scaling.type": "yarn"}), "llama.rope.scaling.type"),
        (Tiny(drop=("blk.1.ffn_up.weight",)), "lacks 'model.layers.1.mlp.up_proj.weight'"),
        (Tiny(add={"blk.0.attn_q.bias": np.zeros(HIDDEN, np.float32)}), "blk.0.attn_q.bias"),
        (Tiny(add={"blk.2.attn_q.weight": np.zeros((8, 8), np.float32)}), "2-layer"),
        (Tiny(q_rows=12), "has shape (12, 8), expected (8, 8)"),
    ],
)
def test_refuses_what_it_cannot_convert(smollm2_gguf, tmp_path, tiny, message):
    path = tmp_path / "bad.gguf"
    write_tiny(path, tiny)
    with pytest.raises(CheckpointFormatError) as err:
        master_of(path)
    assert message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_not_a_gguf_file(smollm2_gguf, tmp_path):
    from adaptgate.demo.gguf.reader import open_llama_gguf

    path = tmp_path / "x.gguf"
    path.write_bytes(b"not a gguf at all" * 10)
    with pytest.raises(CheckpointFormatError, match="not a readable GGUF"):
        open_llama_gguf(path)


def test_missing_package_is_a_usage_error(monkeypatch):
    from adaptgate.demo.gguf import locate

    monkeypatch.setattr(locate, "SMOLLM2_PACKAGE", "adaptgate_no_such_package")
    monkeypatch.setattr(locate, "SMOLLM2_DISTRIBUTION", "adaptgate-no-such-package")
    with pytest.raises(UsageError) as err:
        locate.smollm2_gguf()
    assert "make setup" in str(err.value) and "\n" not in str(err.value)
