"""When the KV-cache gate runs, what it tests, and the CLI's option handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from adaptgate.checkpoint.writer import save_tensors
from adaptgate.errors import UnknownKind
from adaptgate.gate import RunContext
from adaptgate.kvcache.api import parse_kv_dtypes
from adaptgate.kvcache.gate import KVCacheGate, Plan, declared_kv_cache, wanted
from adaptgate.record import GateStatus, RunRecord, RunSettings
from adaptgate.settings import KVCACHE as ENV


def _model(tmp: Path, config: dict[str, object], desc: dict[str, str] | None = None) -> Path:
    save_tensors({"model.layers.0.self_attn.k_proj.weight": torch.zeros(4, 4)}, tmp)
    (tmp / "config.json").write_text(json.dumps({"model_type": "qwen2", **config}))
    if desc is not None:
        (tmp / "quant_model_description.json").write_text(json.dumps(desc))
    return tmp


def _ctx(tmp: Path, model: Path, target: str = "cuda") -> RunContext:
    settings = RunSettings(model=str(model), target=target).with_environment()  # as a run does
    return RunContext(
        run_dir=tmp / "run",
        settings=settings,
        record=RunRecord(run_dir=str(tmp), settings=settings),
    )


def test_declared_caches(tmp_path: Path) -> None:
    plain = _model(tmp_path / "a", {})
    ct = _model(
        tmp_path / "b",
        {"quantization_config": {"quant_method": "compressed-tensors", "config_groups": {},
                                 "kv_cache_scheme": {"num_bits": 8, "type": "float"}}},
    )  # fmt: skip
    c8 = _model(tmp_path / "c", {}, {"version": "1.0.0", "model_quant_type": "W8A8_DYNAMIC",
                                     "kv_cache_type": "C8"})  # fmt: skip
    assert declared_kv_cache(str(plain)) is None
    assert declared_kv_cache(str(ct)) == "fp8_e4m3"
    assert declared_kv_cache(str(c8)) == "int8_c8"


def test_wanted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _model(tmp_path / "a", {})
    monkeypatch.delenv(ENV, raising=False)
    plan = wanted(_ctx(tmp_path, plain), str(plain))
    assert plan.formats is None and ENV in plan.why.text
    monkeypatch.setenv(ENV, "1")
    assert wanted(_ctx(tmp_path, plain), str(plain)).formats == ["fp8_e4m3", "fp8_e5m2"]
    assert wanted(_ctx(tmp_path, plain, "ascend-a2"), str(plain)).formats == ["int8_c8"]
    monkeypatch.setenv(ENV, "fp8")
    plan = wanted(_ctx(tmp_path, plain), str(plain))
    assert plan.formats == ["fp8_e4m3"] and plan.committed == "fp8_e4m3" and not plan.declared
    monkeypatch.setenv(ENV, "auto")
    assert wanted(_ctx(tmp_path, plain), str(plain)).formats is None
    c8 = _model(tmp_path / "c", {}, {"kv_cache_type": "C8"})
    plan = wanted(_ctx(tmp_path, c8, "ascend-a3"), str(c8))
    assert plan.formats == ["int8_c8"] and plan.declared and plan.committed == "int8_c8"


def test_a_pinned_launch_dtype_is_tested_first_and_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    plain = _model(tmp_path / "a", {})

    def plan_for(target: str = "cuda", **settings: str) -> Plan:
        ctx = _ctx(tmp_path, plain, target)
        ctx.settings = ctx.settings.model_copy(update=settings)
        return wanted(ctx, str(plain))

    plan = plan_for(kv_cache_dtype="fp8_e5m2", kv_formats="fp8")
    assert plan.formats == ["fp8_e5m2", "fp8_e4m3"] and plan.committed == "fp8_e5m2"
    assert plan.why.text == "launching with --kv-cache-dtype fp8_e5m2; asked for fp8_e4m3"
    assert not plan.declared
    plan = plan_for("ascend-a2", kv_cache_dtype="int8")
    assert plan.formats == ["int8_c8"] and plan.committed == "int8_c8"
    assert plan.why.text == "launching with --kv-cache-dtype int8"
    assert plan_for(kv_cache_dtype="auto").formats is None  # an unquantized cache: nothing asked


def test_gate_skips_without_a_quantized_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    plain = _model(tmp_path / "a", {})
    outcome = KVCacheGate().run(_ctx(tmp_path, plain))
    assert outcome.status is GateStatus.SKIPPED


def test_parse_kv_dtypes() -> None:
    assert parse_kv_dtypes("fp8, int8,fp8_e5m2") == ["fp8_e4m3", "int8_c8", "fp8_e5m2"]
    with pytest.raises(UnknownKind, match="fp8_e4m3"):
        parse_kv_dtypes("fp4")


def test_cli_bad_input_exits_2(tmp_path: Path) -> None:
    from adaptgate.cli.kvcache import command

    runner = CliRunner()
    res = runner.invoke(command, [str(tmp_path / "missing"), "--kv-formats", "fp16"])
    assert res.exit_code == 2 and "unknown KV-cache format 'fp16'" in res.output
    res = runner.invoke(command, [str(tmp_path / "missing"), "--kv-formats", ","])
    assert res.exit_code == 2 and "no KV-cache dtype" in res.output
    res = runner.invoke(command, [str(tmp_path / "missing")])
    assert res.exit_code == 2
    assert "--scales" in runner.invoke(command, ["--help"]).output


def test_cli_old_kv_dtypes_spelling_still_works_with_one_warning(tmp_path: Path) -> None:
    from adaptgate.cli.kvcache import command

    runner = CliRunner()
    res = runner.invoke(command, [str(tmp_path / "missing"), "--kv-dtypes", "fp16"])
    assert res.exit_code == 2 and "unknown KV-cache format 'fp16'" in res.stderr  # it was read
    warning = "adaptgate: warning: --kv-dtypes is deprecated; use --kv-formats"
    assert res.stderr.splitlines()[0] == warning
    assert res.stderr.count("deprecated") == 1
    res = runner.invoke(
        command, [str(tmp_path / "missing"), "--kv-dtypes", "fp8", "--kv-formats", "fp8"]
    )
    assert res.exit_code == 2 and "give only --kv-formats" in res.stderr
    assert "--kv-dtypes" not in runner.invoke(command, ["--help"]).output  # hidden
    no_warning = runner.invoke(command, [str(tmp_path / "missing"), "--kv-formats", "fp8"])
    assert no_warning.exit_code == 2 and "deprecated" not in no_warning.stderr
