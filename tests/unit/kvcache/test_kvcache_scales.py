"""Scales read from checkpoints under every name the engines accept, calibrated as the
producers do, and written in the names vLLM and msModelSlim C8 read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from adaptgate.checkpoint import open_checkpoint
from adaptgate.checkpoint.writer import save_tensors
from adaptgate.kvcache.formats import KV_FORMATS
from adaptgate.kvcache.scales import (
    C8_DESCRIPTION_FILE,
    C8_FILE,
    VLLM_FILE,
    VLLM_SCHEME_FILE,
    Calibration,
    attention_prefixes,
    calibrated_scales,
    checkpoint_scales,
    unit_scales,
    write_scales,
)

CH = 8  # kv_heads * head_dim


def _ckpt(tmp: Path, extra: dict[str, torch.Tensor], desc: dict[str, str] | None = None) -> Path:
    tensors = {
        f"model.layers.{i}.self_attn.{p}_proj.weight": torch.zeros(CH, 4)
        for i in range(3)
        for p in "qkv"
    }
    tensors.update(extra)
    save_tensors(tensors, tmp)
    (tmp / "config.json").write_text(json.dumps({"architectures": ["X"], "model_type": "qwen2"}))
    if desc is not None:
        (tmp / "quant_model_description.json").write_text(json.dumps(desc))
    return tmp


def test_fp8_scales_under_every_accepted_name(tmp_path: Path) -> None:
    a = "model.layers.{}.self_attn"
    scales = {
        f"{a.format(0)}.k_scale": torch.tensor(0.5),
        f"{a.format(0)}.v_scale": torch.tensor([0.25]),
        f"{a.format(1)}.k_proj.output_scale": torch.tensor([2.0]),
        f"{a.format(1)}.v_proj.output_scale": torch.tensor([3.0]),
        f"{a.format(2)}.kv_scale": torch.tensor(4.0),
    }
    root = _ckpt(tmp_path, scales)
    ckpt = open_checkpoint(root)
    prefixes = attention_prefixes(ckpt, 3)
    assert prefixes == [a.format(i) for i in range(3)]
    ss = checkpoint_scales(KV_FORMATS.get("fp8_e4m3"), ckpt, prefixes, CH)
    assert [(float(s.k), float(s.v)) for s in ss.layers] == [(0.5, 0.25), (2.0, 3.0), (4.0, 4.0)]
    assert ss.notes == []
    e5m2 = checkpoint_scales(KV_FORMATS.get("fp8_e5m2"), ckpt, prefixes, CH)
    assert {float(s.k) for s in e5m2.layers} == {1.0} and "e5m2" in e5m2.notes[0].text


def test_missing_scales_fall_back_like_the_engines(tmp_path: Path) -> None:
    a = "model.layers.1.self_attn"
    root = _ckpt(tmp_path, {f"{a}.k_scale": torch.tensor(0.5)})  # v missing: not loaded
    ckpt = open_checkpoint(root)
    ss = checkpoint_scales(KV_FORMATS.get("fp8_e4m3"), ckpt, attention_prefixes(ckpt, 3), CH)
    assert {float(s.k) for s in ss.layers} == {1.0}
    assert "3 of 3 layers have no stored scales" in ss.notes[0].text
    c8 = checkpoint_scales(KV_FORMATS.get("int8_c8"), ckpt, attention_prefixes(ckpt, 3), CH)
    assert all(torch.equal(s.k, torch.ones(CH)) for s in c8.layers)
    assert any("kv_cache_type" in n.text for n in c8.notes)


def test_c8_scales_and_offsets(tmp_path: Path) -> None:
    extra, desc = {}, {"kv_cache_type": "C8"}
    for i in range(3):
        for p in "kv":
            extra[f"model.layers.{i}.self_attn.{p}_proj.kv_cache_scale"] = torch.full(
                (CH, 1), 0.1 * (i + 1)
            )
            extra[f"model.layers.{i}.self_attn.{p}_proj.kv_cache_offset"] = torch.full(
                (CH,), float(i)
            )
    ckpt = open_checkpoint(_ckpt(tmp_path, extra, desc))
    ss = checkpoint_scales(KV_FORMATS.get("int8_c8"), ckpt, attention_prefixes(ckpt, 3), CH)
    assert ss.layers[2].k.shape == (CH,) and float(ss.layers[2].k[0]) == pytest.approx(0.3)
    assert ss.layers[1].v_offset is not None and float(ss.layers[1].v_offset[0]) == 1.0
    assert any("ignores it" in n.text for n in ss.notes)  # non-zero offsets: flagged


def _calibration() -> Calibration:
    g = torch.Generator().manual_seed(0)
    k = [torch.rand(CH, generator=g) * 10 for _ in range(2)]
    k[1][3] = 900.0
    v = [torch.rand(CH, generator=g) for _ in range(2)]
    return Calibration(k_amax=k, v_amax=v, tokens=123)


def test_calibration_rules() -> None:
    cal = _calibration()
    e4m3 = calibrated_scales(KV_FORMATS.get("fp8_e4m3"), cal)
    assert float(e4m3.layers[1].k) == pytest.approx(900.0 / 448)
    assert float(e4m3.layers[0].v) == pytest.approx(float(cal.v_amax[0].max()) / 448)
    c8 = calibrated_scales(KV_FORMATS.get("int8_c8"), cal)
    torch.testing.assert_close(c8.layers[1].k, cal.k_amax[1] / 127)
    assert c8.layers[1].k_offset is not None and not c8.layers[1].k_offset.any()  # symmetric
    e5m2 = calibrated_scales(KV_FORMATS.get("fp8_e5m2"), cal)
    assert {float(s.k) for s in e5m2.layers} == {1.0}
    assert "123 tokens" in e4m3.notes[0].text


def test_write_scales_in_engine_names(tmp_path: Path) -> None:
    cal = _calibration()
    prefixes = ["model.layers.0.self_attn", "model.layers.1.self_attn"]
    sets = [calibrated_scales(KV_FORMATS.get(n), cal) for n in ("fp8_e4m3", "fp8_e5m2", "int8_c8")]
    files = write_scales(tmp_path, sets, prefixes)
    names = {p.name for p in files}
    assert names == {VLLM_FILE, VLLM_SCHEME_FILE, C8_FILE, C8_DESCRIPTION_FILE}
    vllm = load_file(str(tmp_path / "vllm" / VLLM_FILE))
    assert set(vllm) == {f"{a}.{t}_scale" for a in prefixes for t in "kv"}
    assert vllm["model.layers.1.self_attn.k_scale"].shape == ()
    assert vllm["model.layers.1.self_attn.k_scale"].dtype == torch.float32
    assert float(vllm["model.layers.1.self_attn.k_scale"]) == pytest.approx(900 / 448)
    scheme = json.loads((tmp_path / "vllm" / VLLM_SCHEME_FILE).read_text())
    assert (
        scheme["kv_cache_scheme"]["type"] == "float" and scheme["kv_cache_scheme"]["num_bits"] == 8
    )
    c8 = load_file(str(tmp_path / "msmodelslim" / C8_FILE))
    key = "model.layers.1.self_attn.k_proj.kv_cache_scale"
    torch.testing.assert_close(c8[key], cal.k_amax[1] / 127)
    assert c8["model.layers.0.self_attn.v_proj.kv_cache_offset"].shape == (CH,)
    desc = json.loads((tmp_path / "msmodelslim" / C8_DESCRIPTION_FILE).read_text())
    assert desc["kv_cache_type"] == "C8" and desc[key] == "C8" and len(desc) == 2 + 8


def test_unit_scales() -> None:
    ss = unit_scales(KV_FORMATS.get("int8_c8"), 2, CH)
    assert ss.source == "unit" and ss.layers[0].k_offset is not None
    assert float(unit_scales(KV_FORMATS.get("fp8_e4m3"), 2, CH).layers[1].v) == 1.0


def test_vllm_refuses_e5m2_for_fp8_checkpoints(tmp_path: Path) -> None:
    from adaptgate.kvcache.scales import engine_refuses

    plain = open_checkpoint(_ckpt(tmp_path / "a", {}))
    assert engine_refuses(KV_FORMATS.get("fp8_e5m2"), plain) is None
    root = _ckpt(tmp_path / "b", {})
    cfg = json.loads((root / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "fp8", "weight_block_size": [128, 128]}
    (root / "config.json").write_text(json.dumps(cfg))
    fp8 = open_checkpoint(root)
    assert "refuses fp8_e5m2" in str(engine_refuses(KV_FORMATS.get("fp8_e5m2"), fp8))
    assert engine_refuses(KV_FORMATS.get("fp8_e4m3"), fp8) is None
