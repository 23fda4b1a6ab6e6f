"""Every arch x format builds with the tensor names, dtypes and shapes formats.md describes."""

from __future__ import annotations

import json
import math

import pytest
import torch
from ckpt_helpers import config, load_all, weight_files

from adaptgate.demo import ARCHS, FORMATS
from adaptgate.demo.archs import ARCH_REGISTRY
from adaptgate.demo.master import build_master
from adaptgate.demo.spec import make_spec

CT = {"ct_fp8_channel": "channel", "ct_fp8_tensor": "tensor", "ct_fp8_block": "block"}


def master_for(arch: str, fmt: str, **kw):
    return build_master(make_spec(arch=arch, format=fmt, **kw))


def check_passthrough(master, tensors):
    """Everything that is not a quantized Linear weight (or its bias in Ascend) is the master."""
    quantized = master.quantized_modules()
    for name, value in master.tensors.items():
        module, _, leaf = name.rpartition(".")
        if module in quantized and leaf in ("weight", "bias"):
            continue
        assert tensors[name].dtype == value.dtype, name
        assert torch.equal(tensors[name], value), name


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_builds_with_expected_tensors(tiny_model, arch, fmt):
    d = tiny_model(arch, fmt)
    master = master_for(arch, fmt)
    tensors = load_all(d)
    cfg = config(d)
    quantized = master.quantized_modules()
    assert quantized, "no quantizable linears"
    check_passthrough(master, tensors)
    assert (d / "tokenizer.json").is_file() and (d / "generation_config.json").is_file()
    assert cfg["architectures"] == [master.arch.architecture]
    assert cfg["torch_dtype"] == cfg["dtype"] == "bfloat16"
    expected: set[str] = set()
    for name in master.tensors:
        module = name.rpartition(".")[0]
        expected.add(name)
        if name.endswith(".weight") and module in quantized and fmt != "bf16":
            lin = quantized[module]
            w = tensors[name]
            if fmt == "fp8_block":
                expected.add(f"{module}.weight_scale_inv")
                assert w.dtype == torch.float8_e4m3fn
                s = tensors[f"{module}.weight_scale_inv"]
                assert s.dtype == torch.bfloat16
                grid = (math.ceil(lin.out_features / 128), math.ceil(lin.in_features / 128))
                assert s.shape == grid
            elif fmt in CT:
                expected.add(f"{module}.weight_scale")
                assert w.dtype == torch.float8_e4m3fn
                s = tensors[f"{module}.weight_scale"]
                assert s.dtype == torch.bfloat16
                shape = {"channel": (lin.out_features, 1), "tensor": (1,),
                         "block": (math.ceil(lin.out_features / 128),
                                   math.ceil(lin.in_features / 128))}[CT[fmt]]  # fmt: skip
                assert tuple(s.shape) == shape
                if fmt == "ct_fp8_tensor":
                    expected.add(f"{module}.input_scale")
                    inp = tensors[f"{module}.input_scale"]
                    assert inp.shape == (1,) and inp.dtype == torch.bfloat16 and float(inp) > 0
            elif fmt == "ct_w8a8_int8":  # compressed-tensors int8: bf16 scale per channel
                expected.add(f"{module}.weight_scale")
                assert w.dtype == torch.int8
                s = tensors[f"{module}.weight_scale"]
                assert s.dtype == torch.bfloat16 and s.shape == (lin.out_features, 1)
                assert int(w.abs().amax()) == 127  # symmetric: amax / 127 per channel
            else:
                expected |= {f"{module}.weight_scale", f"{module}.weight_offset"}
                assert w.dtype == torch.int8
                s, o = tensors[f"{module}.weight_scale"], tensors[f"{module}.weight_offset"]
                assert s.dtype == o.dtype == torch.float32
                assert s.shape == o.shape == (lin.out_features, 1)
                assert not bool(o.any())
            assert tuple(w.shape) == (lin.out_features, lin.in_features)
    assert set(tensors) == expected


@pytest.mark.parametrize("arch", ARCHS)
def test_fp8_block_config(tiny_model, arch):
    qc = config(tiny_model(arch, "fp8_block"))["quantization_config"]
    assert qc == {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                  "weight_block_size": [128, 128]}  # fmt: skip


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("fmt", list(CT))
def test_compressed_tensors_config(tiny_model, arch, fmt):
    d = tiny_model(arch, fmt)
    qc = config(d)["quantization_config"]
    assert qc["quant_method"] == "compressed-tensors"
    assert qc["format"] == "float-quantized"
    assert qc["quantization_status"] == "compressed"
    group = qc["config_groups"]["group_0"]
    assert group["targets"] == ["Linear"]
    assert group["weights"]["strategy"] == CT[fmt] and group["weights"]["type"] == "float"
    acts = group["input_activations"]
    assert acts["dynamic"] is (fmt != "ct_fp8_tensor")
    assert "lm_head" in qc["ignore"]
    master = master_for(arch, fmt)
    unquantized = {lin.module for lin in master.layout.linears if not master.quantized(lin)}
    assert set(qc["ignore"]) == unquantized


@pytest.mark.parametrize("arch", ARCHS)
def test_ascend_layout(tiny_model, arch):
    d = tiny_model(arch, "w8a8_dynamic")
    names = sorted(p.name for p in d.iterdir())
    assert "quant_model_description.json" in names
    assert [p.name for p in weight_files(d)] == ["quant_model_weights-00001-of-00001.safetensors"]
    index = json.loads((d / "quant_model_weights.safetensors.index.json").read_text())
    desc = json.loads((d / "quant_model_description.json").read_text())
    tensors = load_all(d)
    assert set(index["weight_map"]) == set(tensors)
    assert desc["version"] == "1.0.0" and desc["model_quant_type"] == "W8A8_DYNAMIC"
    header = {"version", "model_quant_type", "metadata", "group_size", "optional"}
    assert set(desc) - header == set(tensors)
    assert "quantization_config" not in config(d)
    master = master_for(arch, "w8a8_dynamic")
    for name, value in tensors.items():
        kind = desc[name]
        if value.dtype == torch.int8 or name.endswith((".weight_scale", ".weight_offset")):
            assert kind == "W8A8_DYNAMIC", name
        else:
            assert kind == "FLOAT", name
        if name.endswith(".bias"):
            assert value.dtype == torch.float32  # msModelSlim saves biases in float32
    # all shards of a fused layer share one type (vllm-ascend raises otherwise)
    groups: dict[str, set[str]] = {}
    for lin in master.layout.linears:
        groups.setdefault(lin.group, set()).add(desc[f"{lin.module}.weight"])
    assert all(len(types) == 1 for types in groups.values())


@pytest.mark.parametrize("arch", ARCHS)
def test_config_loads_with_autoconfig(tiny_model, arch):
    from transformers import AutoConfig

    d = tiny_model(arch, "fp8_block")
    cfg = AutoConfig.from_pretrained(d)
    raw = config(d)
    assert cfg.model_type == raw["model_type"]
    assert cfg.vocab_size == raw["vocab_size"] and cfg.vocab_size % 128 == 0
    assert cfg.rope_parameters["rope_theta"] == 1000000
    if arch == "glm4_moe":
        assert cfg.rope_parameters["partial_rotary_factor"] == 0.5
        assert cfg.num_nextn_predict_layers == 1 and cfg.first_k_dense_replace == 1
    if ARCH_REGISTRY.get(arch).moe:
        assert cfg.num_experts_per_tok == 2


def test_glm_mtp_layer_is_stored_as_in_glm45(tiny_model):
    d = tiny_model("glm4_moe", "bf16")
    cfg = config(d)
    tensors = load_all(d)
    mtp = f"model.layers.{cfg['num_hidden_layers']}"
    for leaf in ("eh_proj.weight", "enorm.weight", "hnorm.weight", "shared_head.norm.weight",
                 "shared_head.head.weight", "embed_tokens.weight", "mlp.gate.weight",
                 "mlp.gate.e_score_correction_bias", "mlp.shared_experts.down_proj.weight",
                 "self_attn.q_proj.bias", "mlp.experts.7.up_proj.weight"):  # fmt: skip
        assert f"{mtp}.{leaf}" in tensors, leaf
    hidden = cfg["hidden_size"]
    assert tensors[f"{mtp}.eh_proj.weight"].shape == (hidden, 2 * hidden)
    assert torch.equal(tensors[f"{mtp}.embed_tokens.weight"], tensors["model.embed_tokens.weight"])
    assert tensors["model.layers.1.mlp.gate.e_score_correction_bias"].dtype == torch.float32
    assert "model.layers.0.mlp.gate_proj.weight" in tensors  # first_k_dense_replace layer


def test_names_match_real_qwen3_checkpoints(tiny_model):
    layer0 = {
        "input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.q_proj.weight",
        "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
        "self_attn.q_norm.weight", "self_attn.k_norm.weight", "mlp.gate_proj.weight",
        "mlp.up_proj.weight", "mlp.down_proj.weight",
    }  # fmt: skip
    tensors = load_all(tiny_model("qwen3", "bf16"))
    assert {k.removeprefix("model.layers.0.") for k in tensors if ".layers.0." in k} == layer0
    assert {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"} <= set(tensors)
    moe = load_all(tiny_model("qwen3_moe", "bf16"))
    assert "model.layers.0.mlp.gate.weight" in moe
    assert "model.layers.1.mlp.experts.7.down_proj.weight" in moe
    assert not any("shared_expert" in k or k.endswith(".bias") for k in moe)


def test_names_match_real_qwen2_checkpoints(tiny_model):
    """Qwen/Qwen2.5-0.5B: q/k/v biases, no q_norm/k_norm; its config's keys."""
    layer0 = {
        "input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.q_proj.weight",
        "self_attn.q_proj.bias", "self_attn.k_proj.weight", "self_attn.k_proj.bias",
        "self_attn.v_proj.weight", "self_attn.v_proj.bias", "self_attn.o_proj.weight",
        "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
    }  # fmt: skip
    d = tiny_model("qwen2", "bf16")
    tensors = load_all(d)
    assert {k.removeprefix("model.layers.0.") for k in tensors if ".layers.0." in k} == layer0
    cfg = config(d)
    assert cfg["model_type"] == "qwen2" and "head_dim" not in cfg and "attention_bias" not in cfg
    assert cfg["sliding_window"] is None and cfg["use_sliding_window"] is False
    assert cfg["max_window_layers"] == cfg["num_hidden_layers"]
    assert cfg["rope_theta"] == 1000000.0 and cfg["max_position_embeddings"] == 32768
