"""The checkpoint consistency lint: clean demo checkpoints give no finding; each planted fault
gives its finding (with a fix), and errors make inspect FAIL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from adaptgate.checkpoint import open_checkpoint
from adaptgate.inspect import InspectOptions, inspect_model
from adaptgate.inspect.lint import compare_side_files, lint_checkpoint


def copy_of(model: Path, tmp_path: Path, name: str = "copy") -> Path:
    return Path(shutil.copytree(model, tmp_path / name))


def edit(path: Path, **changes: Any) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def findings(model: Path) -> dict[str, Any]:
    ckpt = open_checkpoint(str(model))
    return {f.id: f for f in lint_checkpoint(ckpt.root, ckpt.config, ckpt.tensors)}


@pytest.mark.parametrize("arch", ["qwen3", "glm4_moe"])
def test_clean_checkpoints_have_no_finding(tiny_model, arch):
    assert findings(tiny_model(arch=arch, format="fp8_block")) == {}


def test_generation_that_does_not_stop_at_the_end_of_a_turn(tiny_model, tmp_path):
    model = copy_of(tiny_model(arch="qwen3", format="bf16"), tmp_path)
    ids = json.loads((model / "generation_config.json").read_text())["eos_token_id"]
    edit(model / "generation_config.json", eos_token_id=ids[1:])  # <|endoftext|> only
    found = findings(model)
    turn = found["eos_not_end_of_turn"]
    assert turn.severity == "warning" and "<|im_end|>" in turn.message
    assert f"add {ids[0]} to eos_token_id" in turn.fix
    assert found["eos_tokenizer_mismatch"].severity == "warning"  # eos_token is <|im_end|>
    assert found["eos_config_mismatch"].severity == "warning"
    result = inspect_model(InspectOptions(model=str(model), target="cpu"))
    assert result.verdict == "PASS"  # warnings are reported, not a FAIL
    assert any("<|im_end|>" in w for w in result.warnings)


def test_stop_ids_outside_the_vocabulary_are_an_error(tiny_model, tmp_path):
    model = copy_of(tiny_model(arch="qwen3", format="bf16"), tmp_path)
    edit(model / "generation_config.json", eos_token_id=[10**6])
    assert findings(model)["eos_out_of_vocab"].severity == "error"


def test_untied_without_a_head_fails_inspect(tiny_model, tmp_path):
    model = copy_of(tiny_model(arch="qwen3", format="bf16", tie_embeddings=True), tmp_path)
    assert findings(model) == {}
    edit(model / "config.json", tie_word_embeddings=False)
    assert findings(model)["untied_without_lm_head"].severity == "error"
    result = inspect_model(InspectOptions(model=str(model), target="cpu"))
    assert result.verdict == "FAIL" and result.exit_code == 1
    assert result.reason.startswith("checkpoint lint: tie_word_embeddings is false")


def test_context_beyond_the_rope_scaling(tiny_model, tmp_path):
    model = copy_of(tiny_model(arch="qwen3", format="bf16"), tmp_path)
    scaling = {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 8192}
    edit(model / "config.json", rope_scaling=scaling, max_position_embeddings=40960)
    found = findings(model)["context_beyond_rope"]
    assert "16384" in found.message and "--max-model-len 16384" in found.fix
    edit(model / "config.json", max_position_embeddings=16384)
    assert "context_beyond_rope" not in findings(model)


def test_a_converted_checkpoint_keeps_the_sources_side_files(tiny_model, tmp_path):
    source = tiny_model(arch="qwen3", format="fp8_block")
    out = copy_of(source, tmp_path)
    edit(out / "config.json", quantization_config=None, torch_dtype="float16")
    assert compare_side_files(source, out) == []  # what a conversion rewrites is allowed
    edit(out / "config.json", rope_theta=10000.0)
    tok = json.loads((out / "tokenizer_config.json").read_text())
    edit(out / "tokenizer_config.json", chat_template=tok["chat_template"].replace("\n", " "))
    (out / "generation_config.json").unlink()
    found = {(f.id, f.message.split(" of ")[0]) for f in compare_side_files(source, out)}
    assert ("config_changed", "config.json") in found
    assert ("side_file_changed", "tokenizer_config.json") in found
    assert ("side_file_changed", "generation_config.json") in found
    assert all(f.severity == "error" for f in compare_side_files(source, out))
