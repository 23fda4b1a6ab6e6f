"""The precision gate compares an int8 model under the quantized profile, simulating Ascend's
W8A8_DYNAMIC, in either layout the converter writes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from adaptgate.precision.gate import _is_int8


@pytest.mark.parametrize(
    ("fmt", "int8"),
    [("w8a8_dynamic", True), ("ct_w8a8_int8", True), ("fp8_block", False), ("bf16", False)],
)
def test_int8_in_either_layout(tiny_model: Callable[..., Path], fmt: str, int8: bool) -> None:
    assert _is_int8(str(tiny_model(format=fmt))) is int8
