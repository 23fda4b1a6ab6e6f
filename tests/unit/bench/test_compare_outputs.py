import csv
import json

import pytest
from bench_timelines import make_result

from adaptgate.bench.compare import compare
from adaptgate.bench.models import SweepResult
from adaptgate.bench.outputs import files
from adaptgate.bench.timeline import RequestRecord
from adaptgate.errors import UsageError


def test_compare_rows_and_caveats():
    a, _ = make_result(10)
    b, _ = make_result(20, ttft_shift=0.010)
    cmp = compare(a, b)
    row = next(r for r in cmp.rows if r.metric == "ttft_ms.p50")
    assert row.a == pytest.approx(44.0) and row.delta == pytest.approx(10.0)
    assert row.delta_pct == pytest.approx(100 * 10 / 44)
    assert any("rate" in c for c in cmp.caveats)


def test_vllm_compatible_fields():
    res, _ = make_result(10)
    out = res.vllm_compat()
    for key in (
        "duration",
        "completed",
        "failed",
        "total_input_tokens",
        "total_output_tokens",
        "request_throughput",
        "output_throughput",
        "total_token_throughput",
        "mean_ttft_ms",
        "median_ttft_ms",
        "p99_ttft_ms",
        "mean_tpot_ms",
        "p99_itl_ms",
        "median_e2el_ms",
        "std_ttft_ms",
    ):
        assert key in out, key
    # vLLM's TTFT stops at the first chunk with choices (request_a's empty one at 10 ms)
    assert out["median_ttft_ms"] == res.metrics.ttft_first_chunk_ms.p50
    assert out["median_ttft_first_token_ms"] == pytest.approx(44.0) != out["median_ttft_ms"]
    assert out["completed"] == 2


def test_write_and_load_run(tmp_path):
    res, records = make_result(10)
    written = files.write_run(tmp_path, res, records)
    assert (tmp_path / "bench.json") in written
    lines = (tmp_path / "requests.jsonl").read_text().splitlines()
    assert [RequestRecord.model_validate_json(line) for line in lines] == records
    loaded = files.load_result(tmp_path)
    assert loaded.metrics == res.metrics and loaded.requests_file == "requests.jsonl"
    rows = list(csv.DictReader((tmp_path / "bench.csv").open()))
    assert float(rows[0]["p50_ttft_ms"]) == pytest.approx(44.0)
    assert json.loads((tmp_path / "bench.vllm.json").read_text())["completed"] == 2
    sweep = SweepResult(axis="rate", runs=[res])
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "sweep.json").write_text(sweep.to_json())
    assert isinstance(files.load_result(tmp_path / "s"), SweepResult)
    with pytest.raises(UsageError):
        files.load_result(tmp_path / "missing.json")


def test_plots_and_tables(tmp_path):
    pytest.importorskip("matplotlib")
    from rich.console import Console

    from adaptgate.bench.outputs import plots, tables

    res, records = make_result(10)
    paths = plots.write_plots(tmp_path, records)
    assert [p.name for p in paths] == ["distributions.png", "timeline.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
    sweep = SweepResult(axis="rate", runs=[res, make_result(20, ttft_shift=0.01)[0]])
    assert plots.sweep_curve(sweep, tmp_path / "sweep.png").stat().st_size > 1000
    console = Console(record=True, width=200)
    tables.render(res, console)
    tables.render_sweep(sweep, console)
    text = console.export_text()
    assert "VALID" in text and "TTFT (first chunk, vLLM def.)" in text and "Hyndman-Fan" in text
