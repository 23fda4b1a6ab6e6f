"""issue 19: inspect's sentences render in the report's language -- the support matrix's rows
carry their Chinese beside the English, and the verdict, route and memory plan are catalogue
messages whose English is what run.json has always held."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adaptgate.inspect.api import inspect_model
from adaptgate.inspect.models import InspectOptions, InspectResult
from adaptgate.inspect.support import load_matrix
from adaptgate.messages import Said

CJK = re.compile(r"[\u4e00-\u9fff]")
SENTENCES = ("note", "error", "caveat", "below_min", "missing_flag_error")


def _rows() -> list[dict[str, Any]]:
    matrix = load_matrix()
    return [*matrix["quantization"], *matrix["kv_cache"]]


def test_every_support_matrix_sentence_has_its_chinese_beside_it():
    checked = 0
    for row in _rows():
        keys = [k for k in SENTENCES if row.get(k)]
        # runs_as is a name (W8A8_DYNAMIC) or a sentence; a sentence needs its Chinese
        if len(str(row.get("runs_as", "")).split()) > 2:
            keys.append("runs_as")
        for key in keys:
            assert CJK.search(row.get(f"{key}_zh") or ""), (key, row[key])
            checked += 1
        stray = {k for k in row if k.endswith("_zh")} - {f"{k}_zh" for k in keys}
        assert not stray, (stray, row)
    assert checked >= 15


def sentences(r: InspectResult) -> list[Said]:
    """Every sentence of an inspect result a report shows."""
    out = [r.reason, *([r.recommendation] if r.recommendation else [])]
    if r.support is not None:
        s = r.support
        out += [*s.errors, *s.notes, *s.caveats, *([s.runs_as] if s.runs_as else [])]
    out += [o.title for o in r.routes] + [o.plan.summary for o in r.routes if o.plan]
    return out


@pytest.mark.parametrize(
    ("fmt", "options", "english"),
    [
        (
            "fp8_block",
            {"target": "ascend-a2", "device": "910b4", "release": "0.18.0"},
            "needs conversion on ascend-a2 v0.18.0; route bf16: dequantize to BF16: fits on 1 "
            "device(s); dequantization to BF16 (no calibration; rounding to BF16 only)",
        ),
        (
            "fp8_block",
            {"target": "cpu", "release": "0.18.0", "cpu_flags": frozenset({"avx512f"})},
            "needs conversion on cpu v0.18.0; route bf16: dequantize to BF16; no --device given, "
            "memory not checked",
        ),
        (
            "bf16",
            {"target": "cpu", "release": "0.18.0"},
            "supported on cpu v0.18.0; route native: serve the checkpoint as it is; no --device "
            "given, memory not checked",
        ),
        ("bf16", {}, "no --target or --device: facts only, no support or memory verdict"),
    ],
)
def test_inspect_sentences_keep_their_english_and_render_in_chinese(
    tiny_model: Callable[..., Path], fmt: str, options: dict[str, Any], english: str
):
    r = inspect_model(InspectOptions(model=str(tiny_model(format=fmt)), **options))
    assert r.reason.text == english and r.reason.id is not None
    for s in sentences(r):
        # (tests/unit/report/test_zh_sentences.py checks that no English run is left)
        assert CJK.search(s.in_lang("zh")), s.text
    reread = InspectResult.model_validate_json(r.model_dump_json())
    assert reread.reason.in_lang("zh") == r.reason.in_lang("zh")


def test_the_support_rows_and_memory_plan_render_in_chinese(tiny_model: Callable[..., Path]):
    model = str(tiny_model(format="fp8_block"))
    r = inspect_model(
        InspectOptions(model=model, target="ascend-a2", device="910b4", release="0.18.0")
    )
    assert r.support is not None
    error, note = r.support.errors[0], r.support.notes[0]
    assert error.text.endswith(": fp8 quantization is currently not supported in npu")
    assert "`fp8 quantization is currently not supported in npu`" in error.in_lang("zh")
    assert note.in_lang("zh").startswith("PR #14852（v0.26.0rc1）之前，通用 FP8 无法在 A2/A3")
    plan = r.routes[0].plan
    assert plan is not None and plan.best is not None
    assert plan.summary.text.startswith("fits on 1 x 910b4 (TP=1): KV ")
    assert plan.summary.in_lang("zh").startswith("1 x 910b4（TP=1）可放下：KV Cache ")
    # the warnings (11. in the report) hold the same sentences
    assert note in r.warnings
