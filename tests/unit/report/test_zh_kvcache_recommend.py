"""The kvcache recommendation: which cache to deploy, as a sentence in both languages."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from report_language import english_runs

from adaptgate.kvcache.api import recommend


def _report(name: str, verdict: str, deployable: bool = True) -> Any:
    return SimpleNamespace(format=name, combined_verdict=verdict, deployable=deployable)


def test_a_safe_fp8_cache_is_recommended_and_the_sentence_renders_in_chinese():
    vllm, ascend, text = recommend(
        [_report("fp8_e4m3", "SAFE"), _report("int8_c8", "RISKY")], "calibrated"
    )
    assert (vllm, ascend) == ("fp8_e4m3", "none")
    assert text.text == (
        "vLLM: --kv-cache-dtype fp8_e4m3 with the calibrated k/v scales merged into the "
        "checkpoint; vllm-ascend: bf16 cache (C8 RISKY)"
    )
    assert not english_runs(text.in_lang("zh"))


def test_no_safe_deployable_cache_keeps_auto_and_lists_each_verdict():
    vllm, ascend, text = recommend(
        [_report("fp8_e4m3", "SAFE", deployable=False), _report("fp8_e5m2", "RISKY")], "static"
    )
    assert (vllm, ascend) == ("auto", "none")
    assert text.text == (
        "vLLM: --kv-cache-dtype auto (no deployable FP8 cache is SAFE: "
        "fp8_e4m3 SAFE but refused, fp8_e5m2 RISKY)"
    )
    zh = text.in_lang("zh")
    assert "fp8_e4m3 判定为 SAFE，但引擎拒绝加载、fp8_e5m2 判定为 RISKY" in zh
    assert not english_runs(zh)
