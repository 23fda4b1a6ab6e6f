"""Thresholds as data, and the refusal of dumps that cannot be compared."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from adaptgate.errors import DumpError, UnknownKind, UsageError
from adaptgate.metrics.limits import Limit, evaluate
from adaptgate.precision.compare import check_comparable
from adaptgate.precision.thresholds import load_thresholds
from adaptgate.reference.dump import ModelFacts, PromptRecord, ReferenceDump


def test_builtin_profiles_cite_their_sources() -> None:
    device = load_thresholds()
    assert device.profile == "device"
    assert device.limits.logits["cosine"].min == 0.999  # msit
    assert device.limits.logits["kl_mean"].max == 1e-4  # msit
    assert device.limits.hidden["cosine"].min == 0.99  # msprobe
    assert device.limits.hidden["rel_l2"].max == 0.05  # CANN offline compare
    quantized = load_thresholds(profile="quantized")
    for profile in (device, quantized):
        for section in ("logits", "hidden", "jump", "generation", "served"):
            assert all(limit.source for limit in getattr(profile.limits, section).values())
    with pytest.raises(UnknownKind, match="use one of: device, quantized"):
        load_thresholds(profile="nope")


def test_every_limit_cites_its_source_in_both_languages() -> None:
    """issue 19: a failed limit's source shows in the zh report as the file's source_zh."""
    for name in ("device", "quantized"):
        profile = load_thresholds(profile=name).limits
        for section in ("logits", "hidden", "jump", "generation", "served"):
            for metric, limit in getattr(profile, section).items():
                zh = limit.source_zh or ""
                assert re.search(r"[\u4e00-\u9fff]", zh), (name, section, metric)
                assert limit.source and zh != limit.source


def test_user_file_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "default_profile: p\nprofiles:\n  p:\n    logits:\n      cosin: {min: 0.9}\n", "utf-8"
    )
    with pytest.raises(UsageError, match="unknown metric 'cosin'"):
        load_thresholds(path)
    path.write_text("default_profile: p\nprofiles:\n  p:\n    hidden:\n      cosine: {min: 0.5}\n")
    assert load_thresholds(path).limits.hidden["cosine"].min == 0.5


def test_evaluate_bounds_and_missing_values() -> None:
    limits = {"cosine": Limit(min=0.99, source="s"), "rel_l2": Limit(max=0.05, source="s")}
    checks = evaluate("x", limits, {"cosine": 0.995, "rel_l2": 0.06})
    assert [(c.metric, c.passed) for c in checks] == [("cosine", True), ("rel_l2", False)]
    assert not evaluate("x", limits, {"cosine": math.nan})[0].passed
    assert not evaluate("x", limits, {"cosine": None})[0].passed
    assert evaluate("x", {"cosine": Limit(source="reported only")}, {"cosine": 0.1}) == []


def _dump(tokenizer: str = "t" * 64, ids: list[int] | None = None, pid: str = "a") -> ReferenceDump:
    return ReferenceDump(
        model=ModelFacts(
            path="/m", architecture="A", model_type="qwen3", num_layers=2, vocab_size=10,
            quantization="BF16", tokenizer_hash=tokenizer,
        ),
        device="cpu", dtype="float32", mode="full", layers=[0, 1], max_new_tokens=2, top_k=5,
        eos_token_ids=[1],
        prompts=[
            PromptRecord(
                id=pid, category="x", chat=False, text="hi", rendered="hi", token_ids=ids or [3, 4]
            )
        ],
    )  # fmt: skip


def test_dumps_of_other_prompts_or_tokenizers_are_refused() -> None:
    check_comparable(_dump(), _dump())
    with pytest.raises(DumpError, match="different tokenizers"):
        check_comparable(_dump(), _dump(tokenizer="u" * 64))
    with pytest.raises(DumpError, match="different prompts"):
        check_comparable(_dump(), _dump(pid="b"))
    with pytest.raises(DumpError, match="prompt 'a' differs"):
        check_comparable(_dump(), _dump(ids=[3, 5]))
    assert DumpError("x").exit_code == 2
