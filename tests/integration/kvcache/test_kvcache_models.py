"""Issue 5's criteria on tiny models: the planted Qwen2 biases make fp8_e4m3 with unit scales
UNSAFE and the scan names exactly the planted layers; calibrated scales make it SAFE or RISKY
with the reason; a clean Qwen3 (QK-norm, no bias) is SAFE. Fewer tokens than the gate's 256
keep the tests fast; the verdicts rest on the scan and on KL, not on the length."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors.torch import load_file

from adaptgate.kvcache.api import run_kvcache
from adaptgate.kvcache.models import KVCacheConfig, KVCacheResult

pytestmark = pytest.mark.slow
TOKENS = 64
PLANTED = ["model.layers.1.self_attn", "model.layers.3.self_attn"]


def test_planted_biases_unit_scales(planted_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "unit"
    result = run_kvcache(
        KVCacheConfig(model=str(planted_model), scales="unit", new_tokens=TOKENS, out=out)
    )
    e4m3 = result.format("fp8_e4m3")
    assert e4m3 is not None
    assert e4m3.verdict == "UNSAFE"
    assert e4m3.layers_at_risk == PLANTED
    assert "overflow_fraction" in e4m3.reason.text and e4m3.scan.overflow_fraction > 0.001
    assert e4m3.scan.clip_ratio > 1.25
    assert result.model.attention_bias and not result.model.qk_norm
    planted_k = [max(ls.k_amax) for ls in result.scan]
    assert planted_k[1] > 448 and planted_k[3] > 448 and max(planted_k[0], planted_k[2]) < 10
    assert result.recommended_kv_cache_dtype != "fp8_e4m3"
    # JSON first: the file round-trips, the plot is a PNG
    again = KVCacheResult.model_validate_json((out / "kvcache.json").read_text())
    assert again.format("fp8_e4m3") == e4m3
    assert (out / "kvcache_outliers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(e4m3.kl_per_step) == TOKENS and len(e4m3.degeneration) == result.settings.prompts
    assert len(e4m3.top1_per_step) == TOKENS
    mean_kl = sum(e4m3.kl_per_step) / TOKENS  # every prompt has every step: means agree
    assert abs(mean_kl - e4m3.logits.kl_mean) < 1e-9


def test_planted_biases_calibrated_scales(planted_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "cal"
    result = run_kvcache(
        KVCacheConfig(
            model=str(planted_model),
            scales="calibrated",
            kv_dtypes=["fp8_e4m3", "int8_c8"],
            new_tokens=TOKENS,
            out=out,
        )
    )
    e4m3 = result.format("fp8_e4m3")
    assert e4m3 is not None and e4m3.verdict in ("SAFE", "RISKY")
    c8 = result.format("int8_c8")
    assert e4m3.prefill == "cache" and c8 is not None and c8.prefill == "fresh"  # the engines
    assert e4m3.reason and e4m3.scan.overflow_fraction <= 0.001
    if e4m3.verdict == "RISKY":
        assert any(not c.passed for c in e4m3.checks)
    # the fix is written in the names the engines load
    vllm = load_file(str(out / "scales" / "vllm" / "kv_scales.safetensors"))
    assert float(vllm["model.layers.1.self_attn.k_scale"]) > 1.0  # 638 / 448
    assert float(vllm["model.layers.0.self_attn.k_scale"]) < 0.1
    c8 = load_file(str(out / "scales" / "msmodelslim" / "kv_cache_c8.safetensors"))
    assert c8["model.layers.3.self_attn.k_proj.kv_cache_scale"].shape == (128,)
    assert "scales/vllm/kv_scales.safetensors" in result.artifacts


def test_clean_qwen3_is_safe(tiny_model: Callable[..., Path]) -> None:
    result = run_kvcache(
        KVCacheConfig(
            model=str(tiny_model("qwen3")), scales="unit", kv_dtypes=["fp8_e4m3"], new_tokens=TOKENS
        )
    )
    e4m3 = result.format("fp8_e4m3")
    assert e4m3 is not None
    assert e4m3.verdict == "SAFE", e4m3.reason
    assert e4m3.layers_at_risk == [] and e4m3.scan.saturated == 0
    assert result.model.qk_norm and not result.model.attention_bias
    assert result.recommended_kv_cache_dtype == "fp8_e4m3"
