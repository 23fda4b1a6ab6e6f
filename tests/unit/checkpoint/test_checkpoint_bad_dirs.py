"""Every broken model directory gives one line naming the file and the fix."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from ckpt_testlib import assert_one_line
from safetensors.torch import save_file

from adaptgate.checkpoint import open_checkpoint
from adaptgate.errors import CheckpointFormatError, CheckpointNotFound, ConfigError

MakeModel = Callable[..., Path]
SHARDS = {
    "model-00001-of-00002.safetensors": {"a": torch.ones(2)},
    "model-00002-of-00002.safetensors": {"b": torch.ones(3)},
}
INDEX = "model.safetensors.index.json"


def _set_weight_map(root: Path, weight_map: dict[str, str]) -> None:
    (root / INDEX).write_text(
        json.dumps({"metadata": {"total_size": 20}, "weight_map": weight_map})
    )


def test_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFound) as info:
        open_checkpoint(tmp_path / "nowhere" / "model")
    assert_one_line(info.value, "does not exist", "nowhere")


def test_not_a_dir(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointNotFound) as info:
        open_checkpoint(tmp_path / "model.safetensors")
    assert_one_line(info.value, "model.safetensors", "not a model directory")


def test_missing_config(make_model: MakeModel) -> None:
    root = make_model(SHARDS)
    (root / "config.json").unlink()
    with pytest.raises(CheckpointNotFound) as info:
        open_checkpoint(root)
    assert_one_line(info.value, "no config.json", str(root))


def test_unparsable_config_gives_line_and_column(make_model: MakeModel) -> None:
    root = make_model(SHARDS)
    (root / "config.json").write_text('{\n  "model_type": "qwen3",\n  "layers": 2,\n}\n')
    with pytest.raises(ConfigError) as info:
        open_checkpoint(root)
    assert_one_line(info.value, "config.json is not valid JSON", "line 4, column 1")


@pytest.mark.parametrize(
    ("text", "kind"), [("[1, 2]", "array"), ('"x"', "string"), ("null", "null")]
)
def test_config_not_an_object(make_model: MakeModel, text: str, kind: str) -> None:
    root = make_model(SHARDS)
    (root / "config.json").write_text(text)
    with pytest.raises(ConfigError) as info:
        open_checkpoint(root)
    assert_one_line(info.value, "config.json", f"JSON {kind}, not an object")


def test_bad_generation_config(make_model: MakeModel) -> None:
    root = make_model(SHARDS, extra={"generation_config.json": "{oops"})
    with pytest.raises(ConfigError) as info:
        open_checkpoint(root)
    assert_one_line(info.value, "generation_config.json", "line 1, column 2")


def test_truncated_shard_names_the_file(make_model: MakeModel) -> None:
    root = make_model(SHARDS, index=INDEX)
    shard = root / "model-00002-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:-3])
    with pytest.raises(CheckpointFormatError) as info:
        open_checkpoint(root)
    assert_one_line(info.value, "model-00002-of-00002.safetensors", "truncated")


def test_duplicate_tensor_across_shards(make_model: MakeModel) -> None:
    root = make_model(
        {"a.safetensors": {"w": torch.ones(1)}, "b.safetensors": {"w": torch.ones(1)}}
    )
    with pytest.raises(CheckpointFormatError) as info:
        open_checkpoint(root)
    assert_one_line(info.value, "'w'", "a.safetensors", "b.safetensors")


def test_index_names_missing_shard(make_model: MakeModel) -> None:
    root = make_model(SHARDS, index=INDEX)
    (root / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointNotFound) as info:
        open_checkpoint(root)
    assert_one_line(info.value, INDEX, "model-00002-of-00002.safetensors", "missing")


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("/etc/passwd", "absolute"),
        ("../outside.safetensors", "'..'"),
        ("sub/../../outside.safetensors", "'..'"),
        ("C:\\weights\\x.safetensors", "absolute"),
        ("", "not a file name"),
        (7, "not a file name"),
    ],
)
def test_index_path_outside_dir(make_model: MakeModel, target: object, words: str) -> None:
    root = make_model(SHARDS)
    _set_weight_map(root, {"a": "model-00001-of-00002.safetensors", "b": target})  # type: ignore[dict-item]
    with pytest.raises(CheckpointFormatError) as info:
        open_checkpoint(root)
    assert_one_line(info.value, INDEX, "'b'", words)


def test_index_symlink_escaping(make_model: MakeModel, tmp_path: Path) -> None:
    root = make_model(SHARDS)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    save_file({"b": torch.ones(3)}, str(outside / "b.safetensors"))
    os.symlink(outside, root / "linked")
    os.symlink(outside / "b.safetensors", root / "b-link.safetensors")
    for entry in ("linked/b.safetensors", "b-link.safetensors"):
        _set_weight_map(root, {"a": "model-00001-of-00002.safetensors", "b": entry})
        with pytest.raises(CheckpointFormatError) as info:
            open_checkpoint(root)
        assert_one_line(info.value, INDEX, "resolves outside the model directory")


def test_index_symlink_inside_dir_is_fine(make_model: MakeModel) -> None:
    root = make_model(SHARDS)
    os.symlink(root / "model-00002-of-00002.safetensors", root / "alias.safetensors")
    _set_weight_map(root, {"a": "model-00001-of-00002.safetensors", "b": "alias.safetensors"})
    assert open_checkpoint(root).tensors["b"].file == "alias.safetensors"


def test_index_tensor_absent_from_its_shard(make_model: MakeModel) -> None:
    root = make_model(SHARDS)
    _set_weight_map(
        root, {"a": "model-00002-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
    )
    with pytest.raises(CheckpointFormatError) as info:
        open_checkpoint(root)
    assert_one_line(info.value, INDEX, "'a'", "model-00002-of-00002.safetensors")


def test_index_tensor_in_no_shard(make_model: MakeModel) -> None:
    root = make_model(SHARDS)
    _set_weight_map(
        root, {"a": "model-00001-of-00002.safetensors", "zz": "model-00001-of-00002.safetensors"}
    )
    with pytest.raises(CheckpointFormatError) as info:
        open_checkpoint(root)
    assert_one_line(info.value, "'zz'", "no weight file has it")


@pytest.mark.parametrize(
    "index", ['{"metadata": {}}', '{"weight_map": [1]}', '{"weight_map": {}}', "[]", "{bad"]
)
def test_index_without_weight_map(make_model: MakeModel, index: str) -> None:
    root = make_model(SHARDS)
    (root / INDEX).write_text(index)
    with pytest.raises(ConfigError) as info:
        open_checkpoint(root)
    assert_one_line(info.value, INDEX)


def test_several_unknown_indexes(make_model: MakeModel) -> None:
    root = make_model(SHARDS)
    for name in ("a.safetensors.index.json", "b.safetensors.index.json"):
        (root / name).write_text(json.dumps({"weight_map": {}}))
    with pytest.raises(CheckpointFormatError) as info:
        open_checkpoint(root)
    assert_one_line(info.value, "a.safetensors.index.json", "b.safetensors.index.json")


def test_no_weight_files(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(CheckpointNotFound) as info:
        open_checkpoint(tmp_path)
    assert_one_line(info.value, "no weight files", str(tmp_path))


def test_several_quant_descriptions(make_model: MakeModel) -> None:
    root = make_model(
        SHARDS,
        extra={
            "quant_model_description_w8a8.json": "{}",
            "quant_model_description_w4a8.json": "{}",
        },
    )
    with pytest.raises(ConfigError) as info:
        open_checkpoint(root)
    assert_one_line(
        info.value, "quant_model_description_w8a8.json", "quant_model_description_w4a8.json"
    )
