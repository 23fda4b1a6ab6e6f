from __future__ import annotations

import json
from pathlib import Path

import inspect_synth as synth  # the test directory is on sys.path (pytest rootdir import mode)
import pytest
import torch
import yaml

from adaptgate.inspect.facts import read_facts
from adaptgate.inspect.formula import count_from_config
from adaptgate.inspect.params import classify, count_from_headers

CONFIGS = Path(__file__).resolve().parents[2] / "data" / "configs"
PUBLISHED = yaml.safe_load((CONFIGS / "published.yaml").read_text())


def load(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text())


@pytest.mark.parametrize(
    "config", [synth.TINY_QWEN3, synth.TINY_QWEN3_MOE, synth.TINY_GLM4_MOE, synth.TINY_DEEPSEEK_V3]
)
def test_header_counts_equal_transformers_numel(tmp_path: Path, config: dict) -> None:
    shapes = synth.hf_shapes(config)
    mtp_expected = 0
    if config.get("num_nextn_predict_layers"):
        mtp_expected = synth.add_mtp(
            shapes, config, store_embed=config["model_type"] == "deepseek_v3"
        )
    ckpt = synth.write_checkpoint(tmp_path, config, synth.random_tensors(shapes))
    facts = read_facts(config)
    counts = count_from_headers(ckpt.tensors, facts)
    total, kinds = synth.meta_param_count(config)
    assert counts.total == total
    assert counts.by_category["routed_experts"] == kinds["experts"]
    assert counts.by_category["embeddings"] == kinds["embed"]
    assert counts.by_category["lm_head"] == kinds["lm_head"]
    assert counts.mtp == mtp_expected
    assert counts.tensor_count == len(shapes)
    assert counts.bytes_by_dtype == {"BF16": 2 * (total + mtp_expected)}
    assert counts.quant_metadata_bytes == 0
    # the config formula is a separate code path and must agree with transformers too
    computed = count_from_config(facts)
    assert computed.total == total
    assert computed.mtp == mtp_expected
    assert computed.by_category == counts.by_category


def test_active_params_for_moe(tmp_path: Path) -> None:
    config = synth.TINY_QWEN3_MOE
    total, kinds = synth.meta_param_count(config)
    counts = count_from_config(read_facts(config))
    k, n = config["num_experts_per_tok"], config["num_experts"]
    assert counts.active == total - kinds["experts"] + kinds["experts"] * k // n


def test_fp8_scales_are_metadata_not_parameters(tmp_path: Path) -> None:
    config = {
        **synth.TINY_QWEN3_MOE,
        "quantization_config": {
            "quant_method": "fp8",
            "weight_block_size": [32, 32],
            "activation_scheme": "dynamic",
        },
    }
    bf16 = synth.random_tensors(synth.hf_shapes(config))
    q = synth.fp8_block(bf16, (32, 32), skip=("embed", "lm_head", "mlp.gate."))
    ckpt = synth.write_checkpoint(tmp_path, config, q)
    counts = count_from_headers(ckpt.tensors, read_facts(config))
    total, _ = synth.meta_param_count(config)
    scales = {n: t for n, t in q.items() if n.endswith("weight_scale_inv")}
    assert counts.total == total
    assert counts.quant_metadata_tensors == len(scales)
    assert counts.quant_metadata_bytes == sum(t.numel() * 2 for t in scales.values())
    fp8_elems = sum(t.numel() for t in q.values() if t.dtype == torch.float8_e4m3fn)
    assert counts.bytes_by_dtype["F8_E4M3"] == fp8_elems


def test_packed_int4_counts_unpacked_values() -> None:
    facts = read_facts(synth.TINY_QWEN3)
    tensors = {
        "model.layers.0.mlp.down_proj.weight_packed": synth.StandInTensor("w", "I32", (64, 12)),
        "model.layers.0.mlp.down_proj.weight_scale": synth.StandInTensor("s", "BF16", (64, 3)),
        "model.layers.0.mlp.down_proj.weight_shape": synth.StandInTensor("x", "I64", (2,)),
    }
    counts = count_from_headers(tensors, facts)
    assert counts.by_category["mlp_dense"] == 64 * 96
    assert counts.quant_metadata_tensors == 2


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("model.layers.3.self_attn.q_norm.weight", ("norms", False)),
        ("model.layers.3.mlp.gate.e_score_correction_bias", ("router", False)),
        ("model.layers.3.mlp.shared_experts.up_proj.weight", ("shared_experts", False)),
        ("model.layers.3.mlp.shared_expert_gate.weight", ("shared_experts", False)),
        ("model.layers.61.eh_proj.weight", ("other", True)),
        ("model.layers.61.shared_head.head.weight", ("lm_head", True)),
        ("mtp.layers.0.mlp.experts.3.down_proj.weight", ("routed_experts", True)),
    ],
)
def test_classify(name: str, expected: tuple[str, bool]) -> None:
    assert classify(name, 61) == expected


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_config_totals_match_published(name: str) -> None:
    published = PUBLISHED[name]
    counts = count_from_config(read_facts(load(name)))
    assert counts.source == "computed"
    assert abs(counts.total - published["total"]) / published["total"] < 0.005
    if "active" in published:
        assert abs(counts.active - published["active"]) / published["active"] < 0.005
    if "non_embedding" in published:
        assert (
            abs(counts.non_embedding - published["non_embedding"]) / published["non_embedding"]
            < 0.01
        )


def test_config_formula_matches_transformers_on_real_configs() -> None:
    # transformers builds the released architectures on the meta device in well under a second
    for name in ("Qwen3-8B", "Qwen3-30B-A3B", "GLM-4.5"):
        config = load(name)
        total, _ = synth.meta_param_count(config)
        assert count_from_config(read_facts(config)).total == total, name


def test_qwen3_4b_fp8_dequantized_size_matches_seed() -> None:
    # seed 000: 8.82 GB of bf16 when both embed_tokens and lm_head are stored
    f = read_facts(load("Qwen3-4B-Thinking-2507-FP8"))
    counts = count_from_config(f)
    stored = (counts.total + f.vocab_size * f.hidden_size) * 2
    assert abs(stored / 1e9 - 8.82) < 0.01
