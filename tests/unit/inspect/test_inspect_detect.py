from __future__ import annotations

from pathlib import Path

import inspect_synth as synth
import torch

from adaptgate.formats.detect import detect_quantization, is_quant_metadata, matches

FP8_QC = {
    "quant_method": "fp8",
    "fmt": "e4m3",
    "activation_scheme": "dynamic",
    "weight_block_size": [32, 32],
}
SKIP = ("embed", "lm_head", "mlp.gate.")


def _fp8_checkpoint(tmp_path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    config = {**synth.TINY_QWEN3_MOE, "quantization_config": FP8_QC}
    bf16 = synth.random_tensors(synth.hf_shapes(config))
    return config, synth.fp8_block(bf16, (32, 32), skip=SKIP)


def _kinds(scheme) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in scheme.disagreements:
        out[d.kind] = out.get(d.kind, 0) + d.count
    return out


def test_fp8_block_clean_checkpoint(tmp_path: Path) -> None:
    config, q = _fp8_checkpoint(tmp_path)
    ckpt = synth.write_checkpoint(tmp_path, config, q)
    scheme = detect_quantization(config, ckpt.tensors, None)
    assert (scheme.method, scheme.label, scheme.block_size) == ("fp8", "FP8_BLOCK", [32, 32])
    assert scheme.weight_dtype == "F8_E4M3"
    assert scheme.quantized_weights == sum(1 for t in q.values() if t.dtype == torch.float8_e4m3fn)
    assert scheme.disagreements == []
    # a 40 x 64 expert weight has a ceil grid of 2 x 2
    assert ckpt.tensors["model.layers.1.mlp.experts.0.gate_proj.weight_scale_inv"].shape == (2, 2)


def test_fp8_every_disagreement_is_listed(tmp_path: Path) -> None:
    config, q = _fp8_checkpoint(tmp_path)
    del q["model.layers.0.self_attn.q_proj.weight_scale_inv"]  # weight without scale
    q["model.layers.0.self_attn.k_proj.weight_scale_inv"] = torch.ones(5, 5)  # wrong grid
    q["model.layers.9.mlp.down_proj.weight_scale_inv"] = torch.ones(1, 1)  # scale, no weight
    q["model.layers.0.self_attn.o_proj.weight"] = torch.zeros(64, 64, dtype=torch.bfloat16)
    ckpt = synth.write_checkpoint(tmp_path, config, q)
    kinds = _kinds(detect_quantization(config, ckpt.tensors, None))
    assert kinds["missing_scale"] == 1
    assert kinds["grid_shape"] == 1
    assert kinds["orphan_scale"] == 2  # the stray one, and the one beside the bf16 o_proj
    assert kinds["unlisted_unquantized"] == 1


def test_config_says_fp8_but_tensors_are_bf16(tmp_path: Path) -> None:
    config = {**synth.TINY_QWEN3, "quantization_config": FP8_QC}
    ckpt = synth.write_checkpoint(tmp_path, config, synth.random_tensors(synth.hf_shapes(config)))
    scheme = detect_quantization(config, ckpt.tensors, None)
    assert scheme.weight_dtype == "BF16"
    assert _kinds(scheme) == {"config_vs_tensors": 1}
    assert "no weight is quantized" in scheme.disagreements[0].message


def test_no_config_but_quantized_tensors(tmp_path: Path) -> None:
    config, q = _fp8_checkpoint(tmp_path)
    plain = {k: v for k, v in config.items() if k != "quantization_config"}
    ckpt = synth.write_checkpoint(tmp_path, plain, q)
    scheme = detect_quantization(plain, ckpt.tensors, None)
    assert scheme.method == "none" and scheme.source == "tensors"
    assert "config_vs_tensors" in _kinds(scheme)


def _ct_config(strategy: str, dynamic: bool, weight_type: str = "float", **extra) -> dict:
    group = {
        "targets": ["Linear"],
        "weights": {
            "num_bits": 8,
            "type": weight_type,
            "strategy": strategy,
            "symmetric": True,
            "block_structure": [32, 32] if strategy == "block" else None,
        },
        "input_activations": {
            "num_bits": 8,
            "type": weight_type,
            "strategy": "token" if dynamic else "tensor",
            "dynamic": dynamic,
        },
    }
    qc = {
        "quant_method": "compressed-tensors",
        "format": "float-quantized",
        "config_groups": {"group_0": group},
        "ignore": ["lm_head", "re:.*mlp\\.gate$"],
        **extra,
    }
    return {**synth.TINY_QWEN3_MOE, "quantization_config": qc}


def _ct_tensors(config: dict, dtype: torch.dtype, static: bool) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, t in synth.random_tensors(synth.hf_shapes(config)).items():
        if t.ndim == 2 and name.endswith("proj.weight") and not any(s in name for s in SKIP):
            out[name] = t.to(dtype) if dtype != torch.int8 else t.clamp(-1, 1).mul(100).to(dtype)
            out[name.replace("weight", "weight_scale")] = torch.rand(t.shape[0], 1).bfloat16()
            if static:
                out[name.replace("weight", "input_scale")] = torch.ones(1).bfloat16()
        else:
            out[name] = t
    return out


def test_compressed_tensors_fp8_dynamic(tmp_path: Path) -> None:
    config = _ct_config("channel", dynamic=True)
    ckpt = synth.write_checkpoint(tmp_path, config, _ct_tensors(config, torch.float8_e4m3fn, False))
    scheme = detect_quantization(config, ckpt.tensors, None)
    assert scheme.label == "FP8_DYNAMIC" and scheme.activation_scheme == "dynamic"
    assert scheme.groups[0].weight_strategy == "channel"
    assert scheme.ignore == ["lm_head", "re:.*mlp\\.gate$"]
    assert scheme.disagreements == []


def test_compressed_tensors_static_without_input_scale_and_int8_mismatch(tmp_path: Path) -> None:
    config = _ct_config("channel", dynamic=False, weight_type="int")
    tensors = _ct_tensors(config, torch.float8_e4m3fn, static=False)
    ckpt = synth.write_checkpoint(tmp_path, config, tensors)
    scheme = detect_quantization(config, ckpt.tensors, None)
    assert scheme.label == "W8A8"
    kinds = _kinds(scheme)
    assert kinds["missing_scale"] == scheme.quantized_weights  # no input_scale anywhere
    assert kinds["config_vs_tensors"] == scheme.quantized_weights  # int declared, fp8 stored


def test_kv_cache_scheme_without_scales(tmp_path: Path) -> None:
    config = _ct_config("channel", True, kv_cache_scheme={"num_bits": 8, "type": "float"})
    ckpt = synth.write_checkpoint(tmp_path, config, _ct_tensors(config, torch.float8_e4m3fn, False))
    assert (
        "kv_cache_scheme"
        in detect_quantization(config, ckpt.tensors, None).disagreements[0].message
    )


def test_ascend_description_cross_check(tmp_path: Path) -> None:
    config = dict(synth.TINY_QWEN3)
    tensors: dict[str, torch.Tensor] = {}
    desc: dict = {"version": "1.0.0", "model_quant_type": "W8A8_DYNAMIC", "kv_cache_type": "C8"}
    for name, t in synth.random_tensors(synth.hf_shapes(config)).items():
        if t.ndim == 2 and name.endswith("proj.weight"):
            tensors[name] = torch.zeros(t.shape, dtype=torch.int8)
            tensors[name.replace("weight", "weight_scale")] = torch.rand(t.shape[0], 1)
            tensors[name.replace("weight", "weight_offset")] = torch.zeros(t.shape[0], 1)
            for part in ("weight", "weight_scale", "weight_offset"):
                desc[name.replace("weight", part)] = "W8A8_DYNAMIC"
        else:
            tensors[name] = t
            desc[name] = "FLOAT"
    desc["model.layers.7.mlp.up_proj.weight"] = "W8A8_DYNAMIC"  # names a tensor that is not there
    ckpt = synth.write_checkpoint(tmp_path, config, tensors, desc)
    scheme = detect_quantization(config, ckpt.tensors, ckpt.quant_description)
    assert (scheme.method, scheme.label, scheme.kv_cache_type) == ("ascend", "W8A8_DYNAMIC", "C8")
    by_message = {d.message: d for d in scheme.disagreements}
    assert by_message["description names a tensor that does not exist"].count == 1
    assert by_message["kv_cache_type C8 but no kv_cache_scale tensor"].count == 1
    assert len(scheme.disagreements) == 2


def test_named_methods_and_none() -> None:
    for qc, method in (
        ({"quant_method": "awq", "bits": 4}, "awq"),
        ({"quant_method": "gptq", "bits": 4}, "gptq"),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "bitsandbytes"),
    ):
        scheme = detect_quantization({"quantization_config": qc}, None, None)
        assert scheme.method == method and scheme.weight_bits == 4
    assert detect_quantization({}, None, None).method == "none"


def test_metadata_names_and_ignore_patterns() -> None:
    for name in ("a.weight_scale_inv", "a.k_scale", "a.kv_cache_offset", "a.deq_scale", "a.qzeros"):
        assert is_quant_metadata(name)
    assert not is_quant_metadata("model.layers.0.mlp.gate.weight")
    assert matches("model.layers.0.mlp.gate.weight", ["re:.*mlp\\.gate$"])
    assert matches("lm_head.weight", ["lm_head"])
    assert not matches("model.layers.0.mlp.gate_proj.weight", ["re:.*mlp\\.gate$"])
