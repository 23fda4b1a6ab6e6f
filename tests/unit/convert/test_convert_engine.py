"""Every input format and target on tiny checkpoints: output against the textbook dequantization,
pass-through bytes, config, side files, index and record."""

from __future__ import annotations

import json

import pytest
import torch
from convert_testlib import bits, convert, load_dir, tensorwise_sha256

from adaptgate.checkpoint import open_checkpoint
from adaptgate.formats.dequantize import dequantize_reference

CASES = [
    pytest.param("qwen3", "fp8_block", {}, id="fp8-block-single-file"),
    pytest.param(
        "qwen3", "fp8_block", {"shards": 3, "scale_dtype": "float32"}, id="fp8-f32-3shards"
    ),
    pytest.param(
        "qwen3", "fp8_block", {"scale_dtype": "float16", "block": (64, 96)}, id="fp8-f16-64x96"
    ),
    pytest.param(
        "qwen3_moe", "fp8_block", {"non_divisible": True, "shards": 2}, id="moe-nondivisible"
    ),
    pytest.param("qwen3", "fp8_block", {"ue8m0": True, "scale_dtype": "float32"}, id="fp8-ue8m0"),
    pytest.param(
        "glm4_moe",
        "ct_fp8_channel",
        {"shards": 2},
        id="glm-ct-channel-mtp",
        marks=pytest.mark.slow,  # building the GLM MoE demo with compressed-tensors: ~6 s
    ),
    pytest.param("qwen3", "ct_fp8_tensor", {}, id="ct-tensor"),
    pytest.param("qwen3_moe", "ct_fp8_block", {"shards": 2}, id="ct-block-moe"),
]


def _strategy(quant) -> tuple[str, tuple[int, int]]:
    return quant.strategy, quant.block


@pytest.mark.parametrize(("arch", "fmt", "kw"), CASES)
@pytest.mark.parametrize("target", ["bf16", "fp16"])
def test_dequantized_output_matches_reference(tiny_model, tmp_path, arch, fmt, kw, target):
    src = tiny_model(arch=arch, format=fmt, **kw)
    result = convert(src, tmp_path / "out", target, max_shard_size=300_000, verify=True)
    assert result.verify is not None and result.verify.ok, result.verify.problems
    ckpt = open_checkpoint(src)
    out = load_dir(tmp_path / "out")
    dtype = torch.float16 if target == "fp16" else torch.bfloat16
    records = {r.name: r for r in result.tensors}
    scales = {d.name for d in result.dropped if d.reason.startswith("scale of")}
    assert set(out) == set(records)
    assert not any(t.dtype in (torch.float8_e4m3fn, torch.float8_e5m2) for t in out.values())
    for name, rec in records.items():
        got = out[name]
        source = ckpt.read_tensor(rec.source)
        if rec.action == "dequantize":
            weight = ckpt.tensors[name]
            scale_name = next(s for s in scales if s.rsplit(".", 1)[0] == name.rsplit(".", 1)[0])
            scale = ckpt.read_tensor(scale_name)
            strategy, block = _quant_layout(ckpt, weight.shape, scale.shape)
            want = dequantize_reference(
                source, scale, strategy=strategy, block=block, target=target
            )
            assert got.dtype == dtype and torch.equal(bits(got), bits(want)), name
        elif rec.action == "copy":
            assert got.dtype == source.dtype and torch.equal(bits(got), bits(source)), name
        else:
            assert rec.action == "cast" and target == "fp16" and got.dtype == torch.float16
            assert torch.equal(got, source.float().clamp(-65504, 65504).to(torch.float16))
    assert result.errors.saturated == 0 and result.errors.nonfinite == 0


def _quant_layout(ckpt, wshape, sshape):
    qc = ckpt.config.get("quantization_config", {})
    if qc.get("quant_method") == "fp8":
        return "block", tuple(qc["weight_block_size"])
    group = next(iter(qc["config_groups"].values()))["weights"]
    if group["strategy"] == "block":
        return "block", tuple(group["block_structure"])
    return group["strategy"], None


def test_config_side_files_index_and_record(tiny_model, tmp_path):
    src = tiny_model(arch="qwen3", format="fp8_block", shards=3, scale_dtype="float32")
    out = tmp_path / "out"
    result = convert(src, out, "bf16", max_shard_size=200_000)
    config = json.loads((out / "config.json").read_text())
    source_config = json.loads((src / "config.json").read_text())
    assert "quantization_config" not in config
    for key in ("dtype", "torch_dtype"):
        if key in source_config:
            assert config[key] == "bfloat16"
    assert {k: v for k, v in config.items() if k not in ("dtype", "torch_dtype")} == {
        k: v
        for k, v in source_config.items()
        if k not in ("dtype", "torch_dtype", "quantization_config")
    }
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (out / name).read_bytes() == (src / name).read_bytes()
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(out.glob("model-*.safetensors"))
    assert len(shards) == len(result.shards) > 1
    assert sorted(index["weight_map"]) == sorted(load_dir(out))
    assert index["metadata"]["total_size"] == sum(
        t.numel() * t.element_size() for t in load_dir(out).values()
    )
    record = json.loads((out / "conversion.json").read_text())
    assert record["kind"] == "conversion" and record["schema_version"]
    assert record["adaptgate_version"] and record["target"] == "bf16"
    assert record["checksum"] == "crc32c" and record["kernel"] == "c"
    for source in record["sources"]:  # computed from the workers' own reads, in file order
        assert source["digest"] == tensorwise_sha256(src / source["file"])
    assert {t["name"] for t in record["tensors"]} == set(index["weight_map"])
    first = record["tensors"][0]
    assert {"source_dtype", "source_shape", "dtype", "shape", "checksum"} <= set(first)
    assert not (tmp_path / "out.partial").exists()
    assert not (out / ".convert").exists()
    reopened = open_checkpoint(out)
    assert reopened.config_dtype() == "bfloat16"


def test_text_config_dtype_is_rewritten(tmp_path):
    from convert_testlib import FP8_CONFIG, small_fp8_model

    config = dict(FP8_CONFIG)
    config["text_config"] = {"dtype": "bfloat16", "quantization_config": {"quant_method": "fp8"}}
    src = small_fp8_model(tmp_path / "src", config=config)
    convert(src, tmp_path / "out", "fp16")
    written = json.loads((tmp_path / "out" / "config.json").read_text())
    assert written["torch_dtype"] == "float16"
    assert written["text_config"] == {"dtype": "float16"}


def test_fp16_saturation_is_counted_never_inf(tmp_path):
    from convert_testlib import write_model

    q = torch.full((128, 128), 448.0).to(torch.float8_e4m3fn)
    q[0, :10] = -448.0
    scale = torch.tensor([[300.0]])
    src = write_model(
        tmp_path / "src", {"model.safetensors": {"a.weight": q, "a.weight_scale_inv": scale}}
    )
    result = convert(src, tmp_path / "out", "fp16", verify=True)
    out = load_dir(tmp_path / "out")["a.weight"]
    assert torch.isfinite(out).all()
    assert result.errors.saturated == 128 * 128
    assert out.abs().max().item() == 65504.0


def test_same_bytes_whatever_the_worker_count(tiny_model, tmp_path):
    src = tiny_model(arch="qwen3_moe", format="fp8_block", non_divisible=True, shards=2)
    convert(src, tmp_path / "a", "bf16", workers=1, max_shard_size=300_000)
    convert(src, tmp_path / "b", "bf16", workers=3, max_shard_size=300_000)
    files = sorted(p.name for p in (tmp_path / "a").iterdir() if p.name != "conversion.json")
    assert files == sorted(
        p.name for p in (tmp_path / "b").iterdir() if p.name != "conversion.json"
    )
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_numpy_kernel_writes_the_same_bytes(tiny_model, tmp_path, monkeypatch):
    src = tiny_model(arch="qwen3_moe", format="fp8_block", non_divisible=True, shards=2)
    convert(src, tmp_path / "c", "bf16")
    monkeypatch.setenv("ADAPTGATE_KERNEL", "numpy")
    result = convert(src, tmp_path / "n", "bf16")
    assert result.kernel == "numpy"
    for file in (tmp_path / "c").glob("*.safetensors"):
        assert file.read_bytes() == (tmp_path / "n" / file.name).read_bytes()


def test_buffered_writes_give_the_same_bytes(tiny_model, tmp_path):
    src = tiny_model(arch="qwen3", format="fp8_block")
    convert(src, tmp_path / "d", "bf16", direct_io=True)
    convert(src, tmp_path / "b", "bf16", direct_io=False, fsync=False)
    for file in (tmp_path / "d").glob("*.safetensors"):
        assert file.read_bytes() == (tmp_path / "b" / file.name).read_bytes()


def test_file_digest_recomputes_the_recorded_digest(tiny_model, tmp_path):
    from adaptgate.convert.source import file_digest

    src = tiny_model(arch="qwen3", format="fp8_block", shards=3, scale_dtype="float32")
    result = convert(src, tmp_path / "out", "bf16", hash_sources=True)
    for source in result.sources:
        assert (
            source.digest == file_digest(src / source.file) == tensorwise_sha256(src / source.file)
        )
    skipped = convert(src, tmp_path / "out2", "bf16", hash_sources=False)
    assert all(s.digest is None for s in skipped.sources)
