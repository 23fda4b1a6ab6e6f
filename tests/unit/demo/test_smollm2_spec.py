"""source="smollm2" in DemoSpec and the CLI: what it fixes, what it refuses (no GGUF needed)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from adaptgate.cli.main import cli
from adaptgate.demo.archs import LLAMA, Dims
from adaptgate.demo.layout import build_layout
from adaptgate.demo.spec import make_spec
from adaptgate.errors import InternalError, UnknownKind, UsageError


def test_smollm2_spec_is_a_llama():
    spec = make_spec(source="smollm2", format="fp8_block", block=(64, 128), scale_dtype="float32",
                     shards=2, modules_to_not_convert=("model.layers.0.mlp",))  # fmt: skip
    assert spec.arch == "llama" and spec.block_size == (64, 128)
    assert make_spec(source="smollm2", arch="llama") == make_spec(source="smollm2")
    assert make_spec(arch=None).arch == "qwen3"  # left out: the synthetic default


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"arch": "qwen3_moe"}, "arch 'qwen3_moe' does not apply to source 'smollm2'"),
        ({"seed": 3}, "seed does not apply"),
        ({"num_layers": 2}, "num_layers does not apply"),
        ({"tie_embeddings": True}, "tie_embeddings does not apply"),
        ({"non_divisible": True}, "non_divisible does not apply"),
        ({"format": "bf16", "ue8m0": True}, "ue8m0 applies to fp8_block"),
    ],
)
def test_smollm2_refuses_synthetic_options(fields, message):
    with pytest.raises(UsageError) as err:
        make_spec(source="smollm2", **fields)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_llama_is_not_a_synthetic_arch():
    with pytest.raises(UnknownKind, match="--from smollm2"):
        make_spec(arch="llama")
    with pytest.raises(UsageError):
        make_spec(source="gguf")
    with pytest.raises(InternalError):
        LLAMA.config(Dims(576, 9, 3, 64, 1536, 30, 49152), make_spec(source="smollm2"))


def test_llama_layout_has_no_qk_norm():
    dims = Dims(hidden=576, heads=9, kv_heads=3, head_dim=64, intermediate=1536, layers=2,
                vocab=49152)  # fmt: skip
    layout = build_layout(LLAMA, dims, tie_embeddings=True)
    names = [t.name for t in layout.tensors]
    assert len(names) == 1 + 2 * 9 + 1 and not any("_norm." in n for n in names)
    assert "lm_head.weight" not in names
    assert layout.linear("model.layers.1.self_attn.k_proj").out_features == 192
    assert all(lin.quantizable for lin in layout.linears)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arch", "qwen3"], "does not apply to source 'smollm2'"),
        (["--seed", "1"], "seed does not apply"),
        (["--layers", "2"], "num_layers does not apply"),
        (["--tie-embeddings"], "tie_embeddings does not apply"),
        (["--non-divisible"], "non_divisible does not apply"),
        (["--format", "bf16", "--block", "64x64"], "block applies to"),
    ],
)
def test_cli_bad_combinations_exit_2(tmp_path, args, message):
    out = tmp_path / "m"
    result = CliRunner().invoke(cli, ["demo-model", str(out), "--from", "smollm2", *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("adaptgate: error:") and message in lines[0]
    assert not out.exists() and not (tmp_path / "m.partial").exists()
