from __future__ import annotations

import json
from pathlib import Path

import inspect_synth as synth
import pytest

from adaptgate.errors import UnknownKind, UsageError
from adaptgate.formats.detect import detect_quantization
from adaptgate.inspect import InspectOptions, inspect_model, list_devices
from adaptgate.inspect.devices import GiB, MiB, device_profile
from adaptgate.inspect.facts import read_facts
from adaptgate.inspect.kvcache import kv_bytes_per_token, kv_facts
from adaptgate.inspect.memory import ACTIVATION_RESERVE_GIB, NON_TORCH_GIB
from adaptgate.inspect.support import check_support, load_matrix

CONFIGS = Path(__file__).resolve().parents[2] / "data" / "configs"


def cfg(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text())


def plan(name: str, **kw) -> object:
    return inspect_model(InspectOptions(config_path=CONFIGS / f"{name}.json", **kw))


# --- facts -------------------------------------------------------------------------------------


def test_facts_of_released_models() -> None:
    glm = read_facts(cfg("GLM-4.7-FP8"))
    assert (glm.family, glm.is_moe, glm.qk_norm, glm.rotary_dim, glm.mtp_layers) == (
        "glm4_moe",
        True,
        True,
        64,
        1,
    )
    assert len(glm.moe_layers) == 92 - 3 and glm.first_dense_layers == 3
    ds = read_facts(cfg("DeepSeek-V3"))
    assert ds.is_mla and ds.head_dim == 192 and ds.rotary_dim == 64 and ds.rope_scaling
    q8 = read_facts(cfg("Qwen3-8B"))
    assert (q8.family, q8.is_moe, q8.qk_norm, q8.head_dim_explicit) == ("qwen3", False, True, True)
    assert q8.context_length == 40960 and q8.dtype == "bfloat16"


def test_facts_nested_text_config_and_dtype_key() -> None:
    inner = {k: v for k, v in synth.TINY_QWEN3.items() if k not in {"torch_dtype", "head_dim"}}
    wrapped = {
        "architectures": ["X"],
        "model_type": "wrapper",
        "dtype": "float16",
        "text_config": inner,
    }
    f = read_facts(wrapped)
    assert f.model_type == "qwen3" and f.architecture == "X" and f.dtype == "float16"
    assert f.head_dim == 64 // 4 and not f.head_dim_explicit


# --- KV cache ----------------------------------------------------------------------------------


def test_kv_bytes_gqa_and_replication() -> None:
    f = read_facts(cfg("Qwen3-8B"))  # 36 layers, 8 KV heads, head_dim 128
    assert kv_bytes_per_token(f, 2) == 36 * 2 * 8 * 128 * 2 == 147456
    assert kv_bytes_per_token(f, 1, tp=4) == 36 * 2 * 2 * 128
    assert kv_bytes_per_token(f, 2, tp=16) == 36 * 2 * 1 * 128 * 2  # replicated past 8 ranks
    facts = kv_facts(f, tp=8)
    assert facts.kind == "GQA" and facts.bytes_per_token_per_rank["int8"] == 36 * 2 * 128


def test_kv_bytes_mla_and_mtp() -> None:
    f = read_facts(cfg("DeepSeek-V3"))
    assert kv_bytes_per_token(f, 2) == 61 * (512 + 64) * 2
    assert kv_bytes_per_token(f, 2, tp=8) == 61 * 576 * 2  # latent replicated on every rank
    assert kv_bytes_per_token(f, 2, mtp=True) == 62 * 576 * 2
    assert kv_facts(f).kind == "MLA"


# --- devices -----------------------------------------------------------------------------------


def test_device_profiles() -> None:
    ids = {d.id for d in list_devices()}
    assert {"910b1", "910b2", "910b3", "910b4", "a3", "h100", "h200", "a100", "cpu"} <= ids
    assert device_profile("910b4").memory_bytes == 32 * GiB
    assert device_profile("a3").memory_bytes == 64 * GiB  # per die
    assert device_profile("h100").memory_bytes == 81559 * MiB
    assert (
        device_profile("910b3").kv_block_size == 128 and device_profile("h100").kv_block_size == 16
    )
    assert device_profile("cpu", cpu_memory_gib=24).memory_bytes == 24 * GiB
    with pytest.raises(UnknownKind, match="910b4"):
        device_profile("910x")


# --- memory plans from released configs --------------------------------------------------------


def test_glm47_fp8_does_not_fit_one_910b4() -> None:
    r = plan("GLM-4.7-FP8", device="910b4")
    assert r.verdict == "FAIL" and r.exit_code == 1
    assert r.support.verdict == "NEEDS_CONVERSION"
    for route in r.routes:
        layout = route.plan.layouts[0]
        assert layout.status == "does_not_fit" and layout.kv_budget < 0
        assert layout.usable == int(32 * GiB * 0.9)
    assert "28.80 GiB usable" in r.reason.text and "does not fit on 1 x 910b4" in r.reason.text
    # even the 8-bit route needs > 300 GiB on one card
    w8 = next(x for x in r.routes if x.route == "w8a8_dynamic")
    assert w8.plan.layouts[0].weights_per_rank > 300 * GiB


def test_glm45_does_not_fit_one_910b4_but_fits_eight_910b3_as_w8a8() -> None:
    assert plan("GLM-4.5", device="910b4").verdict == "FAIL"
    r = plan("GLM-4.7-FP8", device="910b3", devices=8, max_model_len=133000)
    assert r.verdict == "PASS" and r.recommended == "w8a8_dynamic"
    bf16 = next(x for x in r.routes if x.route == "bf16")
    assert not bf16.plan.fits


def test_qwen3_4b_fp8_fits_one_910b4_via_bf16() -> None:
    r = plan("Qwen3-4B-Thinking-2507-FP8", device="910b4", max_model_len=65536, release="0.18.0")
    assert r.verdict == "PASS" and r.recommended == "bf16"
    assert r.support.verdict == "NEEDS_CONVERSION"
    errors = [e.text for e in r.support.errors]
    assert any("fp8 quantization is currently not supported in npu" in e for e in errors)
    best = next(x for x in r.routes if x.route == "bf16").plan.best
    f = read_facts(cfg("Qwen3-4B-Thinking-2507-FP8"))
    params = 4_022_468_096  # transformers' numel of Qwen3-4B (tied), see test_inspect_params
    assert best.devices == 1 and best.weights_per_rank == 2 * params
    act = int(ACTIVATION_RESERVE_GIB["dense"] * f.hidden_size / 4096 * GiB)
    other = int(NON_TORCH_GIB["ascend"][0] * GiB)
    assert best.kv_budget == int(32 * GiB * 0.9) - 2 * params - act - other
    per_token = 36 * 2 * 8 * 128 * 2
    assert best.kv_bytes_per_token == per_token
    blocks = best.kv_budget // (per_token * 128)
    assert best.kv_blocks == blocks and best.max_len_one_seq == blocks * 128 >= 65536
    assert best.concurrency == blocks // (65536 // 128)


def test_qwen3_4b_without_max_model_len_fits_reduced() -> None:
    r = plan("Qwen3-4B-Thinking-2507-FP8", device="910b4")
    best = next(x for x in r.routes if x.route == "bf16").plan.best
    assert best.status == "fits_reduced" and "--max-model-len" in best.reason.text
    assert r.verdict == "PASS"


def test_qwen3_235b_w8a8_fits_eight_64gb_a2(tmp_path: Path) -> None:
    # seed 002: an msModelSlim W8A8 checkpoint, TP=8 on 8 x 910B3, max-model-len 36384
    (tmp_path / "config.json").write_text(json.dumps(cfg("Qwen3-235B-A22B-Instruct-2507")))
    (tmp_path / "quant_model_description.json").write_text(
        json.dumps({"version": "1.0.0", "model_quant_type": "W8A8"})
    )
    r = inspect_model(
        InspectOptions(config_path=tmp_path, device="910b3", devices=8, max_model_len=36384)
    )
    assert r.support.verdict == "SUPPORTED" and r.quant.method == "ascend"
    assert r.verdict == "PASS" and r.recommended == "native"
    best = r.routes[0].plan.best
    assert best.devices == 8 and best.tp == 8 and best.concurrency >= 1
    four = [x for x in r.routes[0].plan.layouts if x.devices == 4]
    assert four and all(x.status == "does_not_fit" for x in four)


def test_deepseek_v3_fp8_on_h100_needs_more_than_eight() -> None:
    r = plan("DeepSeek-V3", device="h100", devices=8)
    assert r.support.verdict == "SUPPORTED" and r.verdict == "FAIL"
    assert "does not fit on 8 x h100" in r.reason.text


def test_moe_ep_layouts_are_planned() -> None:
    r = plan("Qwen3-30B-A3B", device="a100", devices=4)
    layouts = r.routes[0].plan.layouts
    assert any(x.expert_parallel and x.dp == 2 for x in layouts)
    assert r.routes[0].plan.best.devices == 1


# --- support -----------------------------------------------------------------------------------


def _support(name: str, target: str, **kw):
    config = cfg(name)
    return check_support(
        target,
        kw.pop("release", None),
        config["architectures"][0],
        detect_quantization(config, None, None),
        **kw,
    )


def test_support_matrix_rows() -> None:
    glm_a2 = _support("GLM-4.7-FP8", "ascend-a2")
    assert glm_a2.scheme_key == "ct-fp8-channel-dynamic" and glm_a2.verdict == "NEEDS_CONVERSION"
    assert glm_a2.routes == ["bf16", "w8a8_dynamic"]
    glm_a5 = _support("GLM-4.7-FP8", "ascend-a5")
    assert glm_a5.verdict == "SUPPORTED" and str(glm_a5.runs_as) == "W8A8FP8_DYNAMIC"
    old = _support("GLM-4.7-FP8", "ascend-a2", release="v0.11.0rc2")
    assert "before v0.12" in old.errors[0].text
    assert _support("Qwen3-8B", "ascend-a3").verdict == "SUPPORTED"
    assert _support("DeepSeek-V3", "cpu").verdict == "SUPPORTED"
    assert _support("DeepSeek-V3", "cuda").notes == []
    a100 = _support("DeepSeek-V3", "cuda", compute_capability=8.0)
    assert a100.verdict == "SUPPORTED" and "Marlin" in a100.notes[0].text
    kv = _support("Qwen3-8B", "ascend-a2", kv_cache_dtype="fp8")
    assert kv.verdict == "UNSUPPORTED" and "C8" in kv.errors[0].text
    with pytest.raises(UsageError):
        _support("Qwen3-8B", "tpu")


def test_cpu_fp8_depends_on_amx() -> None:
    with_amx = _support("Qwen3-4B-Thinking-2507-FP8", "cpu", cpu_flags=frozenset({"amx_tile"}))
    assert with_amx.verdict == "SUPPORTED"
    without = _support("Qwen3-4B-Thinking-2507-FP8", "cpu", cpu_flags=frozenset({"avx512f"}))
    assert without.verdict == "NEEDS_CONVERSION" and without.routes == ["bf16"]
    assert "AMX" in without.errors[0].text
    unknown = _support("Qwen3-4B-Thinking-2507-FP8", "cpu")
    assert unknown.verdict == "SUPPORTED" and "amx_tile" in unknown.notes[-1].text
    # bf16 needs no AMX
    assert _support("Qwen3-8B", "cpu", cpu_flags=frozenset()).verdict == "SUPPORTED"


def test_compressed_tensors_int8_and_block_on_ascend() -> None:
    base = cfg("Qwen3-8B")
    group = {
        "targets": ["Linear"],
        "weights": {"num_bits": 8, "type": "int", "strategy": "channel"},
        "input_activations": {"num_bits": 8, "type": "int", "strategy": "token", "dynamic": True},
    }
    qc = {"quant_method": "compressed-tensors", "config_groups": {"g": group}}
    scheme = detect_quantization({**base, "quantization_config": qc}, None, None)
    r = check_support("ascend-a2", "0.18.0", "Qwen3ForCausalLM", scheme)
    assert r.verdict == "SUPPORTED" and str(r.runs_as) == "W8A8_DYNAMIC"
    group["weights"] = {
        "num_bits": 8,
        "type": "float",
        "strategy": "block",
        "block_structure": [128, 128],
    }
    scheme = detect_quantization({**base, "quantization_config": qc}, None, None)
    r = check_support("ascend-a2", "0.18.0", "Qwen3ForCausalLM", scheme)
    assert r.verdict == "NEEDS_CONVERSION" and "NotImplementedError" in r.errors[0].text


def test_matrix_is_data_with_sources() -> None:
    matrix = load_matrix()
    for row in matrix["quantization"] + matrix["kv_cache"]:
        assert row["source"] in matrix["sources"]
    for row in matrix["architectures"].values():
        assert row["source"] in matrix["sources"]


def test_device_and_target_must_agree() -> None:
    with pytest.raises(UsageError, match="ascend-a2"):
        plan("Qwen3-8B", device="910b4", target="cuda")
