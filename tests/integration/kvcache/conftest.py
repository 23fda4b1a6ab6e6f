"""The planted-bias Qwen2 checkpoint, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def planted_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Qwen2, 4 layers, k_proj biases of norm 900 planted in layers 1 and 3 (read-only)."""
    from adaptgate.demo.qwen2_planted import PlantedSpec, make_planted_qwen2

    return make_planted_qwen2(tmp_path_factory.mktemp("planted") / "model", PlantedSpec())
