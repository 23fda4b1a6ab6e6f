"""The dump format: tensors + typed JSON, and clear errors for what is not a dump."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adaptgate.errors import CheckpointNotFound, DumpError
from adaptgate.reference.api import parse_layers
from adaptgate.reference.dump import (
    META_FILE,
    ModelFacts,
    PromptRecord,
    ReferenceDump,
    open_dump,
    write_dump,
)


def _meta() -> ReferenceDump:
    return ReferenceDump(
        model=ModelFacts(
            path="/m", architecture="Qwen3ForCausalLM", model_type="qwen3", num_layers=2,
            quantization="BF16", tokenizer_hash="t" * 64,
        ),
        device="cpu", dtype="float32", mode="full", layers=[0, 1], max_new_tokens=2, top_k=5,
        eos_token_ids=[1],
        prompts=[
            PromptRecord(
                id="a", category="x", chat=False, text="hi", rendered="hi", token_ids=[3, 4]
            )
        ],
    )  # fmt: skip


def test_roundtrip(tmp_path: Path) -> None:
    logits = torch.randn(2, 7)
    write_dump(tmp_path / "d", _meta(), {"prompt.0.logits": logits})
    reader = open_dump(tmp_path / "d")
    assert reader.meta.prompts[0].token_ids == [3, 4]
    assert torch.equal(reader.logits(0), logits)
    assert reader.has("prompt.0.logits") and not reader.has("prompt.1.logits")
    with pytest.raises(DumpError, match="no tensor"):
        reader.tensor("prompt.9.logits")


def test_not_a_dump(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFound, match="not a reference dump"):
        open_dump(tmp_path)
    (tmp_path / META_FILE).write_text("{}", encoding="utf-8")
    with pytest.raises(DumpError, match="not a valid reference dump"):
        open_dump(tmp_path)


def test_parse_layers() -> None:
    assert parse_layers(None) is None and parse_layers("all") is None
    assert parse_layers("none") == []
    assert parse_layers("0-2,7,1") == [0, 1, 2, 7]
