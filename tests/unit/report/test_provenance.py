"""Every number in the Markdown and HTML reports, in both languages, comes from run.json."""

from __future__ import annotations

import json

import pytest
from report_provenance import allowed_tokens, html_text, markdown_numbers, tokens

from adaptgate.report.render import write_merged, write_report


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_number_of_the_report_is_in_run_json(full_run, lang):
    files = write_report(full_run, langs=(lang,))
    record = json.loads((full_run / "run.json").read_text())
    # the reproduce section names the run directory this test made
    allowed = allowed_tokens(record) | tokens(str(full_run))
    md = next(f for f in files if f.suffix == ".md").read_text()
    html = next(f for f in files if f.suffix == ".html").read_text()
    assert not markdown_numbers(md) - allowed
    assert not tokens(html_text(html)) - allowed
    bench = next(g for g in record["gates"] if g["name"] == "bench")["result"]["metrics"]
    assert f"{bench['request_throughput']:.2f} req/s" in md
    # the check can fail: a ratio the report computed itself would not be allowed
    ratio = bench["ttft_ms"]["mean"] / bench["tpot_ms"]["mean"]
    assert f"{ratio:.4f}" not in allowed


def test_a_number_not_in_run_json_is_caught(full_run):
    md = (write_report(full_run, formats=("md",))[0]).read_text()
    record = json.loads((full_run / "run.json").read_text())
    allowed = allowed_tokens(record) | tokens(str(full_run))
    assert markdown_numbers(md + "\n| made up | 12.3456 |\n") - allowed == {"12.3456"}


def test_every_number_of_a_merged_report_is_in_one_of_the_runs(make_run, tmp_path):
    def cpu(record):
        record["settings"]["target"] = "cpu"
        record["settings"]["device"] = None
        bench = next(g for g in record["gates"] if g["name"] == "bench")
        bench["result"]["metrics"]["request_throughput"] = 0.4242

    a, b = make_run("npu"), make_run("cpu", cpu)
    out = tmp_path / "cmp"
    files = write_merged([a, b], out, langs=("en", "zh"))
    records = [json.loads((d / "run.json").read_text()) for d in (a, b)]
    allowed = allowed_tokens(*records) | tokens(f"{a} {b} {out}")
    for f in files:
        text = f.read_text()
        found = markdown_numbers(text) if f.suffix == ".md" else tokens(html_text(text))
        assert not found - allowed, f
    assert "0.42 req/s" in files[0].read_text()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_number_of_the_npu_and_real_cpu_comparison_is_in_their_runs(
    full_run, cpu_run, tmp_path, lang
):
    out = tmp_path / "cmp"
    files = write_merged([full_run, cpu_run], out, langs=(lang,))
    records = [json.loads((d / "run.json").read_text()) for d in (full_run, cpu_run)]
    allowed = allowed_tokens(*records) | tokens(f"{full_run} {cpu_run} {out}")
    md, html = (f.read_text() for f in files)
    assert not markdown_numbers(md) - allowed
    assert not tokens(html_text(html)) - allowed


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_number_of_a_real_cpu_run_is_in_its_run_json(cpu_bf16_run, lang):
    files = write_report(cpu_bf16_run, langs=(lang,))
    record = json.loads((cpu_bf16_run / "run.json").read_text())
    allowed = allowed_tokens(record) | tokens(str(cpu_bf16_run))
    md, html = (f.read_text() for f in files)
    assert not markdown_numbers(md) - allowed
    assert not tokens(html_text(html)) - allowed
