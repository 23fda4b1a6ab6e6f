"""`adaptgate reference` through its click command: a complete dump, JSON on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from adaptgate.cli.reference import command as reference_command
from adaptgate.reference.dump import open_dump

pytestmark = pytest.mark.slow


def test_reference_command_writes_a_dump(
    fp8_model: Path, prompts_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ref"
    args = [str(fp8_model), "--out", str(out), "--prompts", str(prompts_file)]
    run = CliRunner().invoke(
        reference_command,
        [*args, "--max-new-tokens", "3", "--layers", "0,3", "--stream-layers", "--json"],
    )
    assert run.exit_code == 0, run.output
    meta = json.loads(run.output)
    assert meta["mode"] == "streamed" and meta["layers"] == [0, 3]
    assert meta["model"]["quantization"] == "FP8_BLOCK"
    assert meta["model"]["model_hash"] and meta["model"]["tokenizer_hash"]
    reader = open_dump(out)
    assert [p.id for p in reader.meta.prompts] == ["english", "chinese", "code"]
    assert reader.has("prompt.0.hidden.3") and not reader.has("prompt.0.hidden.1")
    assert reader.tensor("gen.0.topk_ids").shape == (3, 20)
    bad = CliRunner().invoke(
        reference_command, [str(fp8_model), "--out", str(tmp_path / "x"), "--layers", "9"]
    )
    assert bad.exit_code == 2 and "layer 9 does not exist" in bad.output
