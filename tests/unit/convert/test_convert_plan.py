"""Planning: pairing across shards, ignore lists, deterministic layout, sizes."""

from __future__ import annotations

import itertools

import pytest
import torch
from convert_testlib import FP8_CONFIG, bits, convert, fp8_linear, load_dir, write_model

from adaptgate.checkpoint import open_checkpoint
from adaptgate.convert.layout import natural_key
from adaptgate.convert.models import Action, Target, parse_size
from adaptgate.convert.plan import fused_group, plan_conversion
from adaptgate.errors import UsageError


def test_scale_in_another_shard(tmp_path):
    q, s = fp8_linear(256, 256, seed=4)
    src = write_model(
        tmp_path / "src",
        {
            "model-00001-of-00002.safetensors": {
                "m.weight": q,
                "n.weight": torch.ones(4, 4, dtype=torch.bfloat16),
            },
            "model-00002-of-00002.safetensors": {"m.weight_scale_inv": s},
        },
    )
    plan = plan_conversion(open_checkpoint(src), Target.BF16, max_shard_size=10**9)
    m = plan.by_name()["m.weight"]
    assert (
        m.action is Action.DEQUANTIZE
        and m.quant is not None
        and m.quant.scale == "m.weight_scale_inv"
    )
    convert(src, tmp_path / "out", "bf16", verify=True)
    from adaptgate.formats.dequantize import dequantize_reference

    assert torch.equal(
        bits(load_dir(tmp_path / "out")["m.weight"]), bits(dequantize_reference(q, s))
    )


def test_ignored_fp8_module_warns(tmp_path):
    q, s = fp8_linear(128, 128)
    config = {
        **FP8_CONFIG,
        "quantization_config": {
            **FP8_CONFIG["quantization_config"],
            "ignored_layers": ["re:.*lm_head"],
            "modules_to_not_convert": ["other"],
        },
    }
    src = write_model(
        tmp_path / "src",
        {"model.safetensors": {"lm_head.weight": q, "lm_head.weight_scale_inv": s}},
        config=config,
    )
    plan = plan_conversion(open_checkpoint(src), Target.BF16, max_shard_size=10**9)
    (warning,) = plan.warnings
    assert warning.text == (
        "1 FP8 weights belong to modules the config says stay unquantized (e.g. lm_head.weight); "
        "they are dequantized like the others"
    )
    assert warning.in_lang("zh").startswith("有 1 个 FP8 权重属于 config 声明保持不量化的模块")


def test_layout_is_deterministic_and_bounded(tiny_model):
    ckpt = open_checkpoint(
        tiny_model(arch="qwen3_moe", format="fp8_block", non_divisible=True, shards=2)
    )
    a = plan_conversion(ckpt, Target.BF16, max_shard_size=250_000)
    b = plan_conversion(ckpt, Target.BF16, max_shard_size=250_000)
    assert a.fingerprint() == b.fingerprint()
    assert len(a.shards) > 2
    for shard in a.shards:
        big = max(t.nbytes for t in a.tensors if t.shard == shard.file)
        assert shard.data_size <= 250_000 or len(shard.tensors) == 1 or big > 250_000
        offsets = sorted(t.data_offsets for t in a.tensors if t.shard == shard.file)
        assert offsets[0][0] == 0 and all(x[1] == y[0] for x, y in itertools.pairwise(offsets))
    c = plan_conversion(ckpt, Target.BF16, max_shard_size=500_000)
    assert c.fingerprint() != a.fingerprint()


def test_natural_order_and_fused_groups():
    names = ["model.layers.10.a", "model.layers.9.a", "model.layers.1.b"]
    assert sorted(names, key=natural_key) == [
        "model.layers.1.b",
        "model.layers.9.a",
        "model.layers.10.a",
    ]
    assert fused_group("model.layers.3.self_attn.k_proj") == "model.layers.3.self_attn.qkv_proj"
    assert fused_group("model.layers.3.mlp.up_proj") == "model.layers.3.mlp.gate_up_proj"
    assert fused_group("model.layers.3.mlp.experts.7.down_proj") == "model.layers.3.mlp.experts"
    assert fused_group("model.layers.3.mlp.down_proj") == "model.layers.3.mlp.down_proj"


@pytest.mark.parametrize(
    ("text", "value"),
    [("5GB", 5 * 10**9), ("500MB", 5 * 10**8), ("2GiB", 2 * 2**30), ("1000", 1000)],
)
def test_parse_size(text, value):
    assert parse_size(text) == value


def test_parse_size_rejects_garbage():
    with pytest.raises(UsageError):
        parse_size("five gigs")
