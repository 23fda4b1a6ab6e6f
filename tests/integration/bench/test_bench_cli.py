import json

import pytest
from click.testing import CliRunner

pytest.importorskip("aiohttp", reason="aiohttp (the benchmark client) is not installed")

from adaptgate.bench.calibration_server import Schedule, launch
from adaptgate.cli.bench import command

pytestmark = pytest.mark.timeout(120)


def test_bench_then_compare(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_TEST_KEY", "not-a-real-key")
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("dataset:\n  input_len: 8\n  output_len: 8\nload:\n  num_requests: 20\n")
    runner = CliRunner()
    with launch(Schedule(ttft_ms=10, itl_ms=2)) as (url, _):
        for name, rate in (("a", "40"), ("b", "80")):
            res = runner.invoke(
                command,
                [
                    url,
                    "--scenario",
                    str(scenario),
                    "--rate",
                    rate,
                    "--out",
                    str(tmp_path / name),
                    "--api-key-env",
                    "BENCH_TEST_KEY",
                    "--no-plots",
                    "--json",
                ],
            )
            assert res.exit_code in (0, 1), res.output
            data = json.loads(res.stdout)
            assert data["kind"] == "bench" and data["metrics"]["completed"] == 20
            assert data["repro"]["api_key_sent"] is True
        sweep = runner.invoke(
            command,
            [
                url,
                "--scenario",
                str(scenario),
                "--rates",
                "20,40",
                "--out",
                str(tmp_path / "sweep"),
                "--quiet",
            ],
        )
        assert sweep.exit_code in (0, 1), sweep.output
    for name in ("a", "b"):
        text = (tmp_path / name / "bench.json").read_text()
        assert "not-a-real-key" not in text
        assert (tmp_path / name / "requests.jsonl").exists()
    assert json.loads((tmp_path / "sweep" / "sweep.json").read_text())["axis"] == "rate"
    assert (tmp_path / "sweep" / "sweep.png").exists()
    res = runner.invoke(
        command, ["compare", str(tmp_path / "a"), str(tmp_path / "b" / "bench.json"), "--json"]
    )
    assert res.exit_code == 0, res.output
    cmp = json.loads(res.stdout)
    assert cmp["kind"] == "bench-compare"
    assert any("rate" in c for c in cmp["caveats"])


def test_bad_usage_is_exit_2(tmp_path):
    res = CliRunner().invoke(command, ["http://127.0.0.1:9", "--closed"])
    assert res.exit_code == 2 and "closed-loop" in res.output
