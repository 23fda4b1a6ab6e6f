"""open_checkpoint on the weight layouts adaptgate must recognise, and on broken directories."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from ckpt_testlib import assert_one_line

from adaptgate.checkpoint import Checkpoint, load_json_file, open_checkpoint
from adaptgate.errors import (
    CheckpointFormatError,
    ConfigError,
    PickleRefused,
    UnknownKind,
)

MakeModel = Callable[..., Path]


def _tensors(seed: int, prefix: str = "model.layers.0") -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(256, 128, generator=g)
    return {
        f"{prefix}.mlp.down_proj.weight": (w * 50).to(torch.float8_e4m3fn),
        f"{prefix}.mlp.down_proj.weight_scale_inv": torch.rand(2, 1, generator=g),
        f"{prefix}.input_layernorm.weight": torch.randn(128, generator=g).to(torch.bfloat16),
        f"{prefix}.self_attn.q_proj.weight": torch.randint(-128, 128, (64, 32), generator=g).to(
            torch.int8
        ),
        f"{prefix}.empty": torch.zeros(0, 3, dtype=torch.float16),
        f"{prefix}.flag": torch.tensor(True),
    }


def _assert_reads_back(ckpt: Checkpoint, saved: dict[str, torch.Tensor]) -> None:
    assert set(ckpt.tensors) == set(saved)
    for name, expected in saved.items():
        got = ckpt.read_tensor(name)
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        assert torch.equal(got, expected), name
    assert ckpt.total_bytes() == sum(t.numel() * t.element_size() for t in saved.values())


def test_single_file(make_model: MakeModel) -> None:
    saved = _tensors(0)
    root = make_model({"model.safetensors": saved})
    ckpt = open_checkpoint(root)
    assert ckpt.root == root and ckpt.weight_files == ["model.safetensors"]
    assert ckpt.index is None and ckpt.index_file is None and ckpt.weight_format == "safetensors"
    assert ckpt.config["model_type"] == "llama"
    info = ckpt.tensors["model.layers.0.mlp.down_proj.weight"]
    assert (info.dtype, info.shape, info.file) == ("F8_E4M3", (256, 128), "model.safetensors")
    _assert_reads_back(ckpt, saved)


def test_read_tensor_reads_only_its_bytes(make_model: MakeModel) -> None:
    """Corrupting another tensor's bytes does not change the one read."""
    saved = _tensors(1)
    root = make_model({"model.safetensors": saved})
    ckpt = open_checkpoint(root)
    header = ckpt.headers["model.safetensors"]
    norm = ckpt.tensors["model.layers.0.input_layernorm.weight"]
    q = ckpt.tensors["model.layers.0.self_attn.q_proj.weight"]
    blob = bytearray((root / "model.safetensors").read_bytes())
    start = header.data_start + q.data_offsets[0]
    blob[start : start + q.nbytes] = b"\x01" * q.nbytes
    (root / "model.safetensors").write_bytes(bytes(blob))
    assert torch.equal(ckpt.read_tensor(norm.name), saved[norm.name])
    assert not torch.equal(ckpt.read_tensor(q.name), saved[q.name])


def test_sharded_with_index(make_model: MakeModel) -> None:
    shards = {
        "model-00001-of-00002.safetensors": _tensors(1, "model.layers.0"),
        "model-00002-of-00002.safetensors": _tensors(2, "model.layers.1"),
    }
    root = make_model(shards, index="model.safetensors.index.json")
    ckpt = open_checkpoint(root)
    assert ckpt.weight_files == list(shards)
    assert ckpt.index_file == "model.safetensors.index.json"
    assert ckpt.index is not None and "weight_map" in ckpt.index
    assert ckpt.tensors["model.layers.1.flag"].file == "model-00002-of-00002.safetensors"
    _assert_reads_back(
        ckpt,
        {
            **shards["model-00001-of-00002.safetensors"],
            **shards["model-00002-of-00002.safetensors"],
        },
    )
    assert "model.safetensors.index.json" not in ckpt.other_files


def test_shards_in_natural_order_without_index(make_model: MakeModel) -> None:
    names = [f"part-{i}.safetensors" for i in (10, 2, 1)]
    root = make_model({n: {n: torch.ones(1)} for n in names})
    assert open_checkpoint(root).weight_files == [
        "part-1.safetensors",
        "part-2.safetensors",
        "part-10.safetensors",
    ]


def test_msmodelslim_sharded(make_model: MakeModel) -> None:
    desc = {"version": "1.0.0", "model_quant_type": "W8A8_DYNAMIC", "x.weight": "W8A8_DYNAMIC"}
    shards = {
        "quant_model_weights-00001-of-00002.safetensors": {
            "x.weight": torch.ones(2, 2, dtype=torch.int8)
        },
        "quant_model_weights-00002-of-00002.safetensors": {"x.weight_scale": torch.rand(2, 1)},
    }
    root = make_model(
        shards,
        index="quant_model_weights.safetensors.index.json",
        extra={"quant_model_description.json": json.dumps(desc)},
    )
    ckpt = open_checkpoint(root)
    assert ckpt.weight_files == list(shards)
    assert ckpt.index_file == "quant_model_weights.safetensors.index.json"
    assert ckpt.quant_description == desc
    assert ckpt.quant_description_file == "quant_model_description.json"
    assert "quant_model_description.json" not in ckpt.other_files


def test_msmodelslim_legacy_names(make_model: MakeModel) -> None:
    root = make_model(
        {
            "quant_model_weight_w8a8_dynamic.safetensors": {
                "x.weight": torch.ones(2, dtype=torch.int8)
            }
        },
        extra={"quant_model_description_w8a8_dynamic.json": '{"model_quant_type": "W8A8_DYNAMIC"}'},
    )
    ckpt = open_checkpoint(root)
    assert ckpt.weight_files == ["quant_model_weight_w8a8_dynamic.safetensors"]
    assert ckpt.quant_description == {"model_quant_type": "W8A8_DYNAMIC"}
    assert ckpt.quant_description_file == "quant_model_description_w8a8_dynamic.json"


def test_mindie_sharded_index_name(make_model: MakeModel) -> None:
    root = make_model(
        {"quant_model_weight-00001-of-00001.safetensors": {"x": torch.ones(1)}},
        index="quant_model_weight.safetensors.index.json",
    )
    assert open_checkpoint(root).index_file == "quant_model_weight.safetensors.index.json"


def test_file_lists(make_model: MakeModel) -> None:
    extra = {
        "tokenizer.json": "{}",
        "tokenizer_config.json": "{}",
        "special_tokens_map.json": "{}",
        "vocab.json": "{}",
        "merges.txt": "",
        "chat_template.jinja": "{{ messages }}",
        "qwen.tiktoken": "",
        "additional_chat_templates/tool_use.jinja": "",
        "generation_config.json": '{"temperature": 0.6}',
        "README.md": "# model",
        "preprocessor_config.json": "{}",
        "modeling_custom.py": "",
        "original/params.json": "{}",
        "original/consolidated.00.pth": "not loaded",
        "training_args.bin": "not loaded",
        ".gitattributes": "",
        ".cache/huggingface/download/x.lock": "",
    }
    root = make_model(
        {
            "model.safetensors": {"w": torch.ones(2)},
            "consolidated.safetensors": {"w": torch.ones(2)},
        },
        extra=extra,
    )
    (root / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"w": "model.safetensors"}})
    )
    ckpt = open_checkpoint(root)
    assert ckpt.weight_files == ["model.safetensors"]
    assert ckpt.generation_config == {"temperature": 0.6}
    assert ckpt.tokenizer_files == [
        "additional_chat_templates/tool_use.jinja",
        "chat_template.jinja",
        "merges.txt",
        "qwen.tiktoken",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.json",
    ]
    assert ckpt.other_files == [
        "README.md",
        "generation_config.json",
        "modeling_custom.py",
        "original/params.json",
        "preprocessor_config.json",
    ]
    assert ckpt.ignored_files == [
        "consolidated.safetensors",
        "original/consolidated.00.pth",
        "training_args.bin",
    ]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"dtype": "bfloat16"}, "bfloat16"),
        ({"torch_dtype": "float16"}, "float16"),
        ({"torch_dtype": "torch.float32"}, "float32"),
        ({"dtype": "bfloat16", "torch_dtype": "float16"}, "bfloat16"),
        ({"text_config": {"torch_dtype": "bfloat16"}}, "bfloat16"),
        ({"text_config": {"dtype": "float16"}, "dtype": None}, "float16"),
        ({"llm_config": {"dtype": "bfloat16"}}, "bfloat16"),
        ({"model_type": "x"}, None),
    ],
)
def test_config_dtype(make_model: MakeModel, config: dict, expected: str | None) -> None:
    root = make_model({"model.safetensors": {"w": torch.ones(1)}}, config=config)
    assert open_checkpoint(root).config_dtype() == expected


def test_text_config(make_model: MakeModel) -> None:
    inner = {"num_hidden_layers": 2}
    root = make_model({"model.safetensors": {"w": torch.ones(1)}}, config={"text_config": inner})
    assert open_checkpoint(root).text_config() == inner
    root2 = make_model(
        {"model.safetensors": {"w": torch.ones(1)}}, config=inner, root=root.parent / "m2"
    )
    assert open_checkpoint(root2).text_config() == inner


def test_read_unknown_tensor(make_model: MakeModel) -> None:
    ckpt = open_checkpoint(make_model({"model.safetensors": {"lm_head.weight": torch.ones(1)}}))
    with pytest.raises(UnknownKind) as info:
        ckpt.read_tensor("lm_head.weigth")
    assert_one_line(info.value, "lm_head.weigth", "lm_head.weight")


def test_pickle_refused_then_allowed(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / "config.json").write_text("{}")
    saved = {"a": torch.randn(3, 4).to(torch.bfloat16), "b": torch.arange(5)}
    torch.save(saved, root / "pytorch_model.bin")
    with pytest.raises(PickleRefused) as info:
        open_checkpoint(root)
    assert_one_line(info.value, "pytorch_model.bin", "pickle can run code", "--allow-pickle")
    ckpt = open_checkpoint(root, allow_pickle=True)
    assert ckpt.weight_format == "pickle" and ckpt.weight_files == ["pytorch_model.bin"]
    assert ckpt.tensors["a"].dtype == "BF16" and ckpt.tensors["b"].shape == (5,)
    _assert_reads_back(ckpt, saved)


def test_pickle_with_code_is_refused_even_when_allowed(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / "config.json").write_text("{}")
    torch.save({"a": torch.ones(1), "f": print}, root / "model.pt")
    with pytest.raises(CheckpointFormatError) as info:
        open_checkpoint(root, allow_pickle=True)
    assert_one_line(info.value, "model.pt", "weights_only")


def test_import_does_not_import_torch() -> None:
    code = "import sys, adaptgate.checkpoint; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_load_json_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_json_file(tmp_path / "x.json", "x.json")
    assert_one_line(info.value, "x.json", "not found")
    (tmp_path / "x.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_json_file(tmp_path / "x.json", "x.json")


def test_sharded_pickle_with_index_and_nested_state_dict(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / "config.json").write_text("{}")
    one = {"a": torch.randn(2, 3)}
    two = {"b": torch.randint(-5, 5, (4,), dtype=torch.int8)}
    torch.save(one, root / "pytorch_model-00001-of-00002.bin")
    torch.save({"state_dict": two, "epoch": 3}, root / "pytorch_model-00002-of-00002.bin")
    weight_map = {"a": "pytorch_model-00001-of-00002.bin", "b": "pytorch_model-00002-of-00002.bin"}
    (root / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(PickleRefused, match=r"pytorch_model\.bin\.index\.json"):
        open_checkpoint(root)
    ckpt = open_checkpoint(root, allow_pickle=True)
    assert ckpt.index_file == "pytorch_model.bin.index.json"
    assert ckpt.weight_files == list(weight_map.values())
    _assert_reads_back(ckpt, {**one, **two})


def test_safetensors_win_over_pickle(make_model: MakeModel) -> None:
    root = make_model({"model.safetensors": {"w": torch.ones(1)}})
    torch.save({"w": torch.ones(1)}, root / "pytorch_model.bin")
    ckpt = open_checkpoint(root)  # no PickleRefused: the pickle file is not used
    assert ckpt.weight_files == ["model.safetensors"]
    assert ckpt.ignored_files == ["pytorch_model.bin"]


def test_read_tensor_every_dtype_matches_safetensors(make_model: MakeModel) -> None:
    from safetensors.torch import load_file

    from adaptgate.checkpoint import SAFETENSORS_DTYPES

    g = torch.Generator().manual_seed(7)
    saved = {}
    for code, dt in SAFETENSORS_DTYPES.items():
        if dt.torch_name is None:
            continue
        dtype = getattr(torch, dt.torch_name)
        raw = torch.randint(0, 256, (3, 4 * dtype.itemsize), generator=g, dtype=torch.uint8)
        saved[code] = (raw % 2).bool() if code == "BOOL" else raw.view(dtype)
    root = make_model({"model.safetensors": saved})
    ckpt = open_checkpoint(root)
    expected = load_file(str(root / "model.safetensors"))
    assert ckpt.tensors["F4"].shape == (3, 8)  # logical shape: two F4 values per byte
    for code in saved:
        got = ckpt.read_tensor(code)
        assert got.dtype == expected[code].dtype and got.shape == expected[code].shape, code
        assert torch.equal(got.view(torch.uint8), expected[code].view(torch.uint8)), code


def test_pickle_dtype_safetensors_lacks(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / "config.json").write_text("{}")
    torch.save({"z": torch.zeros(2, dtype=torch.complex128)}, root / "weights.pt")
    with pytest.raises(CheckpointFormatError) as info:
        open_checkpoint(root, allow_pickle=True)
    assert_one_line(info.value, "weights.pt", "'z'", "complex128")
