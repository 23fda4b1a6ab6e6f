"""``--to w8a8-dynamic --format compressed-tensors``: the same int8 weights and scales as the
msModelSlim layout, in the layout the compressed-tensors library defines -- checked by the
library itself (its config models, its model-free decompressor) and by the CPU reference."""

from __future__ import annotations

import json

import pytest
import torch
from convert_testlib import bits, convert, load_dir

from adaptgate.checkpoint import open_checkpoint
from adaptgate.convert.models import OutputFormat, Target
from adaptgate.formats import names

CT = OutputFormat.COMPRESSED_TENSORS


def test_both_layouts_carry_bit_identical_int8_weights_and_scales(tiny_model, tmp_path):
    src = tiny_model(arch="qwen2", format="fp8_block")  # q/k/v biases
    ms_out, ct_out = tmp_path / "modelslim", tmp_path / "ct"
    ms = convert(src, ms_out, "w8a8-dynamic", verify=True, format=OutputFormat.MODELSLIM)
    ct = convert(src, ct_out, "w8a8-dynamic", verify=True, max_shard_size=150_000, format=CT)
    assert ms.verify.ok and ct.verify.ok, ct.verify.problems
    assert (ms.format, ct.format) == ("modelslim", CT)
    a, b = load_dir(ms_out), load_dir(ct_out)
    int8 = [n for n, t in b.items() if t.dtype == torch.int8]
    assert int8 and int8 == [n for n, t in a.items() if t.dtype == torch.int8 and n in b]
    for name in int8:
        module = name.removesuffix(".weight")
        scale = f"{module}.{names.SCALE}"
        assert torch.equal(bits(b[name]), bits(a[name])), name
        assert b[scale].dtype == torch.float32 and b[scale].shape == (b[name].shape[0], 1)
        assert torch.equal(bits(b[scale]), bits(a[scale])), scale
        bias = f"{module}.bias"
        if bias in a:  # msModelSlim's float32 bias; compressed-tensors keeps the source's
            assert a[bias].dtype == torch.float32 and b[bias].dtype == torch.bfloat16
            assert torch.equal(b[bias].float(), a[bias])
    assert any(f"{n.removesuffix('.weight')}.bias" in b for n in int8)
    assert not [n for n in b if n.endswith(names.OFFSET)]
    assert set(a) - set(b) == {f"{n.removesuffix('.weight')}.{names.OFFSET}" for n in int8}
    # every other tensor is the same bytes in both
    assert all(torch.equal(bits(b[n]), bits(a[n])) for n in b if not n.endswith(".bias"))
    files = sorted(p.name for p in ct_out.glob("*.safetensors"))
    assert len(files) > 1 and files[0] == f"model-00001-of-{len(files):05d}.safetensors"
    index = json.loads((ct_out / "model.safetensors.index.json").read_text())
    assert sorted(index["weight_map"]) == sorted(b)
    assert not (ct_out / "quant_model_description.json").exists()
    assert "quantization_config" not in json.loads((ms_out / "config.json").read_text())


@pytest.mark.parametrize("arch", ["qwen3", "qwen3_moe"])
def test_config_and_weights_read_back_by_the_library_and_the_reference(tiny_model, tmp_path, arch):
    """The quantization_config is what the library writes for its own W8A8 checkpoint of the
    same model (the ct_w8a8_int8 demo), ignore list included; the library's decompressor and
    the CPU reference both read every int8 weight back as exactly q * s."""
    from compressed_tensors.entrypoints.convert.converters.ct_dequantizer import (
        CompressedTensorsDequantizer,
    )
    from compressed_tensors.quantization import QuantizationConfig

    from adaptgate.reference.weights import open_weights

    out = tmp_path / "ct"
    convert(tiny_model(arch=arch, format="fp8_block"), out, "w8a8-dynamic", format=CT)
    config = json.loads((out / "config.json").read_text())["quantization_config"]
    library = tiny_model(arch=arch, format="ct_w8a8_int8")
    want = json.loads((library / "config.json").read_text())["quantization_config"]
    assert sorted(config.pop("ignore")) == sorted(want.pop("ignore"))
    assert config == want
    parsed = QuantizationConfig.model_validate(config)
    assert parsed.format == "int-quantized" and parsed.quantization_status == "compressed"
    ignore = json.loads((out / "config.json").read_text())["quantization_config"]["ignore"]
    if arch == "qwen3_moe":
        assert "model.layers.0.mlp.gate" in ignore  # the MoE router stays float

    tensors = load_dir(out)
    int8 = {n: t for n, t in tensors.items() if t.dtype == torch.int8}
    float_2d = {
        n.removesuffix(".weight")
        for n, t in tensors.items()
        if n.endswith(".weight") and t.dim() == 2 and t.dtype != torch.int8
    }
    assert float_2d - set(ignore) == {"model.embed_tokens"}  # every other float Linear listed
    assert not {n.removesuffix(".weight") for n in int8} & set(ignore)
    converter = CompressedTensorsDequantizer(
        out, ignore=["re:.*embed_tokens$"], dtype=torch.float32
    )
    converter.validate(dict(tensors))
    restored = converter.process(dict(tensors))
    weights = open_weights(open_checkpoint(out))
    assert set(weights.int8) == set(int8)
    for name, q in int8.items():
        scale = tensors[f"{name.removesuffix('.weight')}.{names.SCALE}"]
        want_w = (q.double() * scale.double()).float()  # the exact product, rounded once
        assert torch.equal(restored[name], want_w), name
        assert torch.equal(weights.read(name), want_w), name


def test_float_targets_take_no_format(tmp_path):
    from adaptgate.convert.models import ConvertOptions
    from adaptgate.errors import UsageError

    with pytest.raises(UsageError, match="applies to --to w8a8-dynamic"):
        ConvertOptions(model="m", out=tmp_path, target=Target.BF16, format=CT)
    assert OutputFormat.default(Target.BF16, "cpu") is None
    assert OutputFormat.default(Target.W8A8_DYNAMIC, "cpu") is OutputFormat.COMPRESSED_TENSORS
    assert OutputFormat.default(Target.W8A8_DYNAMIC, "cuda") is OutputFormat.COMPRESSED_TENSORS
    assert OutputFormat.default(Target.W8A8_DYNAMIC, "ascend-a2") is OutputFormat.MODELSLIM
    assert OutputFormat.default(Target.W8A8_DYNAMIC, None) is OutputFormat.MODELSLIM
