"""issue 19: a Chinese report holds no English sentence, only names, commands, code, log
excerpts and units. The check is script-aware: code, URLs, paths, flags and identifiers are
taken out, and any remaining run of three or more English words (two of them lower-case, so a
row of names such as "Qwen3 FP8 BF16" is no sentence) is one."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_language import english_runs
from report_runs import DATA, make_run_dir

from adaptgate.report.render import write_report

# issue 19: not yet catalogued -- the English runs the fixture runs' zh reports still hold,
# one a line; the list may only shrink
ALLOWED = DATA / "zh_english_not_yet_catalogued.txt"


def allowed() -> set[str]:
    lines = ALLOWED.read_text(encoding="utf-8").splitlines()
    return {line for line in lines if line and not line.startswith("#")}


def test_the_check_finds_an_english_sentence_and_passes_names_and_code():
    md = "| serve | 通过 | Stage B: serving after 44.9 s |\n`vllm serve -n 8` Qwen3 FP8 /a_b"
    assert english_runs(md) == ["Stage B: serving after"]
    # a comparison sign is no tag: "<=" ... ">" must not hide the English between them
    assert english_runs("KL <= 0.1 | layers at risk | p99 > 2") == ["layers at risk"]
    assert english_runs("<b>粗体</b> <https://example.org/a b>") == []
    assert (
        english_runs("由 run.json 渲染（8 个门禁）；`adaptgate convert MODEL OUT --to bf16`") == []
    )


@pytest.mark.parametrize("source", ["run_full.json", "run_cpu.json", "run_cpu_bf16.json"])
def test_zh_report_holds_no_english_sentence(tmp_path: Path, source: str):
    run = make_run_dir(tmp_path, source=source)
    md = write_report(run, formats=("md",), langs=("zh",))[0].read_text(encoding="utf-8")
    left = sorted(set(english_runs(md)) - allowed())
    assert not left, left
