from pathlib import Path

import pytest

from adaptgate.bench.api import build_config
from adaptgate.bench.config import load_scenario, merge
from adaptgate.bench.gate import BenchGate, default_scenario
from adaptgate.errors import UsageError
from adaptgate.gate import RunContext
from adaptgate.record import GateRecord, GateStatus, RunRecord, RunSettings


def test_scenario_merge_cli_wins(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("load:\n  rate: 4\n  num_requests: 50\ndataset:\n  input_len: 1024\n")
    merged = merge(
        load_scenario(path), {"load": {"rate": 8, "seed": None}, "endpoint": {"url": "http://x"}}
    )
    cfg = build_config(merged)
    assert cfg.load.rate == 8 and cfg.load.num_requests == 50 and cfg.dataset.input_len == 1024


def test_bad_settings_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="closed-loop"):
        build_config({"endpoint": {"url": "u"}, "load": {"mode": "closed"}})
    with pytest.raises(UsageError, match=r"load\.nope"):
        build_config({"endpoint": {"url": "u"}, "load": {"nope": 1}})
    with pytest.raises(UsageError):
        load_scenario(tmp_path / "missing.yaml")


def test_api_key_is_read_from_the_environment_and_never_stored(monkeypatch):
    from adaptgate.bench.backends.openai import auth_headers

    cfg = build_config({"endpoint": {"url": "u", "api_key_env": "MY_KEY"}})
    monkeypatch.setenv("MY_KEY", "s3cret")
    assert auth_headers(cfg.endpoint) == {"Authorization": "Bearer s3cret"}
    assert "s3cret" not in cfg.model_dump_json()


def test_default_scenarios_are_valid():
    assert build_config(default_scenario("cpu", "http://x", "m")).load.num_requests == 32
    assert build_config(default_scenario("ascend-a2", "http://x", None)).sweep.concurrencies


def _ctx(tmp_path: Path, serve: GateRecord | None) -> RunContext:
    record = RunRecord(run_dir=str(tmp_path), settings=RunSettings(model="m", target="cpu"))
    if serve:
        record.put(serve)
    return RunContext(run_dir=tmp_path, settings=record.settings, record=record)


def test_gate_skips_without_a_server(tmp_path):
    assert BenchGate().run(_ctx(tmp_path, None)).status is GateStatus.SKIPPED
    serve = GateRecord(name="serve", title="s", status=GateStatus.PASS, reason="ok", summary={})
    outcome = BenchGate().run(_ctx(tmp_path, serve))
    assert outcome.status is GateStatus.SKIPPED and "no server URL" in outcome.reason
    pytest.importorskip("aiohttp", reason="aiohttp (the benchmark client) is not installed")
    gone = GateRecord(
        name="serve",
        title="s",
        status=GateStatus.PASS,
        reason="ok",
        summary={"url": "http://127.0.0.1:9"},
    )
    outcome = BenchGate().run(_ctx(tmp_path, gone))
    assert outcome.status is GateStatus.SKIPPED and "gone" in outcome.reason
