"""Launch plans beyond the seeds: CPU, routes, MTP, parsers, errors, renderings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from adaptgate.errors import PlanError
from adaptgate.inspect.devices import GiB
from adaptgate.serve.knowledge import PlanContext, env_knowledge, recipes, when_holds
from adaptgate.serve.models import PlanOptions
from adaptgate.serve.plan import build_plan
from adaptgate.serve.runbook import deployment_record, render_runbook, write_plan_outputs
from adaptgate.serve.shell import engine_argv

CONFIGS = Path(__file__).parents[2] / "data" / "configs"


def _flags(plan) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    return {f.flag: f.value for f in plan.flags}


def test_cpu_plan_for_a_tiny_checkpoint(tiny_model) -> None:  # type: ignore[no-untyped-def]
    model = tiny_model(arch="qwen3", format="bf16")
    plan = build_plan(PlanOptions(model=str(model), target="cpu", cpu_kv_cache_gib=2))
    assert plan.launcher == "python-module"
    assert plan.bind_host == "127.0.0.1"
    argv = engine_argv(plan, plan.commands[0], python="/py")
    assert argv[:5] == ["/py", "-m", "vllm.entrypoints.openai.api_server", "--model", str(model)]
    flags = _flags(plan)
    assert "--enforce-eager" in flags
    assert "--gpu-memory-utilization" not in flags  # the CPU build sizes KV by env, not fraction
    assert plan.env_value("VLLM_CPU_KVCACHE_SPACE") == "2"
    assert plan.memory is not None
    per_token = plan.memory.kv_bytes_per_token
    assert per_token == 2 * 2 * 2 * 64 * 2  # layers x (K,V) x kv heads x head_dim x bf16
    assert plan.memory.predicted_kv_tokens == 2 * GiB // per_token
    assert plan.max_model_len == plan.facts.context_length  # 40,960 fits 2 GiB easily
    # the demo template thinks (enable_thinking switch) and has tools: qwen3 parsers
    assert flags["--reasoning-parser"] == "qwen3"
    assert flags["--tool-call-parser"] == "hermes"
    assert plan.container is None


@pytest.mark.parametrize(("amx", "route"), [(False, "bf16"), (True, "native")])
def test_cpu_fp8_route_depends_on_amx(tiny_model, amx: bool, route: str) -> None:  # type: ignore[no-untyped-def]
    model = tiny_model(arch="qwen3", format="fp8_block")
    plan = build_plan(PlanOptions(model=str(model), target="cpu", cpu_amx=amx))
    assert plan.route == route
    linear = next(o for o in plan.operators if o.op == "linear")
    if amx:
        assert plan.conversion is None
        assert linear.status == "supported"
    else:
        assert "AMX" in plan.route_reason.text
        assert plan.conversion is not None
        assert plan.conversion.argv[:2] == ["adaptgate", "convert"]
        assert plan.conversion.argv[-2:] == ["--to", "bf16"]
        assert plan.served_path == f"{model}-bf16"
        assert linear.status == "needs-conversion"


def test_glm47_on_a3_plans_mtp_with_its_memory_cost() -> None:
    plan = build_plan(
        PlanOptions(config_path=CONFIGS / "GLM-4.7-FP8.json", target="ascend-a3", devices=16)
    )
    assert plan.route == "w8a8_dynamic"  # FP8 does not run on A3: convert, keep 8-bit weights
    flags = _flags(plan)
    assert flags["--quantization"] == "ascend"
    assert plan.mtp is not None and plan.mtp.enabled
    spec = json.loads(flags["--speculative-config"] or "")
    assert spec == {"method": "mtp", "num_speculative_tokens": 1}
    # the draft layer's KV: 93 instead of 92 layers per token, so fewer tokens fit
    assert plan.mtp.kv_bytes_per_token_with * 92 == plan.mtp.kv_bytes_per_token_without * 93
    assert plan.mtp.kv_tokens_with < plan.mtp.kv_tokens_without
    assert plan.mtp.weight_bytes_per_rank > 0
    # decode graphs cover max_num_seqs x (1 + draft tokens)
    sizes = json.loads(flags["--compilation-config"] or "")["cudagraph_capture_sizes"]
    assert sizes[-1] == plan.max_num_seqs * 2
    assert flags["--reasoning-parser"] == "glm45"
    assert flags["--tool-call-parser"] == "glm47"
    extra = json.loads(flags["--additional-config"] or "")
    assert extra["enable_shared_expert_dp"] is True
    assert "ascend_fusion_config" in extra  # 16 NPUs: gmmswigluquant off
    assert plan.container is not None and plan.container.image.endswith("-a3")
    ops = {o.op: o for o in plan.operators}
    assert (
        "partial" in ops["rope_partial"].detail.text.lower()
        or "0.5" in ops["rope_partial"].detail.text
    )
    assert ops["moe_sigmoid"].status == "supported"
    assert ops["mtp"].status == "supported"


def test_no_mtp_on_request() -> None:
    plan = build_plan(
        PlanOptions(
            config_path=CONFIGS / "GLM-4.7-FP8.json", target="ascend-a3", devices=16, mtp=False
        )
    )
    assert plan.mtp is not None and not plan.mtp.enabled
    assert "--speculative-config" not in _flags(plan)


def test_instruct_2507_gets_no_reasoning_parser() -> None:
    plan = build_plan(
        PlanOptions(
            config_path=CONFIGS / "Qwen3-235B-A22B-Instruct-2507-FP8.json",
            target="ascend-a2",
            devices=8,
        )
    )
    assert "--reasoning-parser" not in _flags(plan)
    assert plan.route == "w8a8_dynamic"


def test_cuda_plan_has_no_ascend_knobs() -> None:
    plan = build_plan(
        PlanOptions(config_path=CONFIGS / "Qwen3-8B.json", target="cuda", device="h100")
    )
    flags = _flags(plan)
    assert "--additional-config" not in flags
    assert "--compilation-config" not in flags  # vLLM's CUDA graph default
    assert "--quantization" not in flags
    assert plan.env == []
    assert plan.container is not None and plan.container.image.startswith("vllm/vllm-openai:")


def test_fp8_kv_cache_on_ascend_is_refused() -> None:
    with pytest.raises(PlanError, match="kv-cache-dtype fp8") as info:
        build_plan(
            PlanOptions(
                config_path=CONFIGS / "Qwen3-8B.json",
                target="ascend-a2",
                kv_cache_dtype="fp8",
            )
        )
    assert info.value.exit_code == 1


def test_too_long_context_is_refused_with_the_length_that_fits() -> None:
    with pytest.raises(PlanError, match="does not fit") as info:
        build_plan(
            PlanOptions(
                config_path=CONFIGS / "Qwen3-4B-Thinking-2507-FP8.json",
                target="ascend-a2",
                device="910b4",
                max_model_len=262144,
            )
        )
    assert info.value.fix and "--max-model-len 65536" in info.value.fix


def test_model_or_config_is_required() -> None:
    from adaptgate.errors import UsageError

    with pytest.raises(UsageError):
        build_plan(PlanOptions(target="cpu"))


def test_every_flag_and_variable_has_a_reason() -> None:
    plan = build_plan(
        PlanOptions(config_path=CONFIGS / "Qwen3-235B-A22B.json", target="ascend-a2", devices=8)
    )
    assert all(f.reason for f in plan.flags)
    assert all(v.reason for v in plan.env)
    assert all(f.reason for c in plan.commands for f in c.extra_flags)
    assert all(o.reason for o in plan.omitted)


def test_renderings(tmp_path: Path) -> None:
    plan = build_plan(
        PlanOptions(
            config_path=CONFIGS / "Qwen3-4B-Thinking-2507-FP8.json",
            target="ascend-a2",
            device="910b4",
            release="0.18.0",  # before native FP8 (v0.26.0rc1): the plan converts first
        )
    )
    files = write_plan_outputs(plan, tmp_path)
    assert {f.name for f in files} == {
        "plan.json",
        "RUNBOOK.md",
        "deployment.yaml",
        "launch-node0.sh",
    }
    runbook = (tmp_path / "RUNBOOK.md").read_text()
    for needle in ("adaptgate convert", "docker run", "vllm serve", "--max-model-len 65536"):
        assert needle in runbook
    record = yaml.safe_load((tmp_path / "deployment.yaml").read_text())
    assert record["features"]["thinking"].startswith("enabled")
    assert record["quantization"]["route"] == "bf16"
    assert "--load-format dummy" in record["stages"]["A_dummy"]
    assert record["launch"]["env"]["VLLM_WORKER_MULTIPROC_METHOD"] == "spawn"
    assert json.loads((tmp_path / "plan.json").read_text())["kind"] == "plan"
    assert deployment_record(plan)["target"]["image"] == "quay.io/ascend/vllm-ascend:v0.18.0"
    assert "Deliberately not set" in render_runbook(plan)


def test_knowledge_conditions() -> None:
    ctx = PlanContext(target="ascend-a2", family="qwen3_moe", ranks=8, tp=8, moe=True)
    assert when_holds({"platform": "ascend", "min_tp": 2, "moe": True}, ctx)
    assert not when_holds({"max_ranks": 4}, ctx)
    assert not when_holds({"targets": ["ascend-a3"]}, ctx)
    assert env_knowledge()["variables"] and recipes()["additional_config"]


def test_fp8_kv_cache_on_cuda_doubles_the_tokens() -> None:
    base = PlanOptions(config_path=CONFIGS / "Qwen3-8B.json", target="cuda", device="h100")
    auto = build_plan(base)
    fp8 = build_plan(base.model_copy(update={"kv_cache_dtype": "fp8_e4m3"}))
    assert _flags(fp8)["--kv-cache-dtype"] == "fp8_e4m3"
    assert "--kv-cache-dtype" not in _flags(auto)
    assert auto.memory is not None and fp8.memory is not None
    assert fp8.memory.kv_bytes_per_token * 2 == auto.memory.kv_bytes_per_token
    assert 1.9 < fp8.memory.predicted_kv_tokens / auto.memory.predicted_kv_tokens <= 2.0


def test_c8_kv_cache_on_ascend_needs_no_flag() -> None:
    plan = build_plan(
        PlanOptions(
            config_path=CONFIGS / "Qwen3-8B.json", target="ascend-a2", kv_cache_dtype="int8"
        )
    )
    assert "--kv-cache-dtype" not in _flags(plan)
    assert plan.features.kv_cache_dtype.startswith("int8 (C8")


def test_unknown_kv_dtype_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unknown KV-cache dtype 'fp4'"):
        PlanOptions(config_path=CONFIGS / "Qwen3-8B.json", target="cuda", kv_cache_dtype="fp4")
