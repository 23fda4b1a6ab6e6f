"""The plans for the seed reports' models agree with the seeds' commands where those are sound,
and every difference is explained (seed_commands.yaml)."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from adaptgate.serve.models import LaunchPlan, PlanOptions
from adaptgate.serve.plan import build_plan
from adaptgate.serve.shell import engine_argv

CONFIGS = Path(__file__).parents[2] / "data" / "configs"
SEEDS = yaml.safe_load((Path(__file__).with_name("seed_commands.yaml")).read_text("utf-8"))
JSON_FLAGS = {"--compilation-config", "--additional-config", "--speculative-config"}


def _flatten(prefix: str, value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(_flatten(f"{prefix}.{k}", v))
        return out
    return {prefix: json.dumps(value, sort_keys=True)}


def flag_map(argv: list[str]) -> dict[str, str]:
    """--flag -> value ("" for switches), JSON flags flattened to --flag.key.sub."""
    out: dict[str, str] = {}
    i = 0
    while i < len(argv):
        word = argv[i]
        if not word.startswith("--"):
            i += 1
            continue
        value = ""
        if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            value = argv[i + 1]
            i += 1
        if word in JSON_FLAGS:
            out.update(_flatten(word, json.loads(value)))
        else:
            out[word] = value
        i += 1
    for flag, default in SEEDS["vllm_defaults"].items():
        if out.get(flag) == default:
            del out[flag]
    return out


def seed_plan(seed: dict[str, Any], tmp_path: Path) -> LaunchPlan:
    spec = seed["plan"]
    config = CONFIGS / spec["config"]
    if spec.get("w8a8"):
        # The seed serves msModelSlim W8A8 weights: config.json + quant_model_description.json.
        model = tmp_path / config.stem
        model.mkdir()
        shutil.copy(config, model / "config.json")
        desc = {"version": "1.0.0", "model_quant_type": "W8A8"}
        (model / "quant_model_description.json").write_text(json.dumps(desc))
        config = model / "config.json"
    options = PlanOptions(
        config_path=config,
        target=spec["target"],
        device=spec["device"],
        devices=spec["devices"],
        release=spec["release"],
    )
    return build_plan(options)


def differences(seed: dict[str, Any], plan: LaunchPlan) -> set[str]:
    seed_flags = flag_map(shlex.split(seed["command"]))
    plan_flags = flag_map(engine_argv(plan, plan.commands[0]))
    diff = {
        k
        for k in seed_flags.keys() | plan_flags.keys()
        if seed_flags.get(k) != plan_flags.get(k) and k not in seed["deployment_specific"]
    }
    seed_env = {k: str(v) for k, v in seed["env"].items()}
    plan_env = {v.name: v.value for v in plan.env}
    diff |= {
        f"env.{k}" for k in seed_env.keys() | plan_env.keys() if seed_env.get(k) != plan_env.get(k)
    }
    # a JSON key explained at a parent level covers its children
    explained = set(seed["differences"])
    return {d for d in diff if not any(d == e or d.startswith(e + ".") for e in explained)} | {
        e for e in explained if not any(d == e or d.startswith(e + ".") for d in diff)
    }


@pytest.mark.parametrize("seed", SEEDS["seeds"], ids=lambda s: s["id"])
def test_every_difference_from_the_seed_is_explained(seed: dict[str, Any], tmp_path: Path) -> None:
    plan = seed_plan(seed, tmp_path)
    assert plan.route == seed["route"]
    unexplained = differences(seed, plan)
    assert not unexplained, f"unexplained (or stale) differences: {sorted(unexplained)}"


def test_seed_000_qwen3_4b_on_one_910b4(tmp_path: Path) -> None:
    plan = seed_plan(SEEDS["seeds"][0], tmp_path)
    flags = flag_map(engine_argv(plan, plan.commands[0]))
    # where the seed is sound, the plan says the same
    assert flags["--tensor-parallel-size"] == "1"
    assert flags["--max-model-len"] == "65536"
    assert flags["--max-num-seqs"] == "32"
    assert json.loads(flags["--compilation-config.cudagraph_mode"]) == "FULL_DECODE_ONLY"
    assert json.loads(flags["--additional-config.enable_cpu_binding"]) is True
    assert plan.env_value("VLLM_WORKER_MULTIPROC_METHOD") == "spawn"
    assert plan.env_value("HCCL_OP_EXPANSION_MODE") is None  # one card: no collectives
    # the FP8 checkpoint is dequantized first, as the seed did by hand
    assert plan.conversion is not None and plan.conversion.argv[-1] == "bf16"
    assert plan.memory is not None and plan.memory.max_len_one_seq == 123_904
    assert plan.served_model_name == "qwen3-4b-thinking-2507-fp8"


def test_seed_002_qwen3_235b_on_one_a2_node(tmp_path: Path) -> None:
    plan = seed_plan(SEEDS["seeds"][1], tmp_path)
    flags = flag_map(engine_argv(plan, plan.commands[0]))
    assert (plan.layout.tp, plan.layout.dp, plan.layout.nodes) == (8, 1, 1)
    assert flags["--quantization"] == "ascend"
    assert "--async-scheduling" in flags
    assert plan.flag("--gpu-memory-utilization").value == "0.9"  # type: ignore[union-attr]
    assert json.loads(flags["--additional-config.weight_prefetch_config.enabled"]) is True
    assert plan.env_value("HCCL_OP_EXPANSION_MODE") == "AIV"
    assert plan.env_value("HCCL_BUFFSIZE") == "512"
    # inspect's plan: 8 x 64 GB holds the W8A8 weights with 11 full 40,960-token sequences
    assert plan.memory is not None and plan.memory.concurrency_at_max_len == 11
    assert plan.container is not None
    run = plan.container.run
    assert [run[i + 1] for i, w in enumerate(run) if w == "--device"][:8] == [
        f"/dev/davinci{i}" for i in range(8)
    ]
    for node in ("/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc"):
        assert node in run
    mounts = [run[i + 1] for i, w in enumerate(run) if w == "-v"]
    for path in ("/usr/local/Ascend/driver", "/usr/local/Ascend/firmware", "/etc/hccn.conf"):
        assert any(m.startswith(path + ":") for m in mounts)
    assert any(m.startswith("/usr/local/bin/npu-smi:") for m in mounts)


def test_bf16_235b_needs_two_a2_nodes_in_the_tutorial_layout() -> None:
    """Unquantized Qwen3-235B-A22B does not fit one 8 x 64 GB node: DP=2 x TP=8 with EP across
    two nodes, the vllm-ascend v0.18.0 tutorial's multi-node layout."""
    plan = build_plan(
        PlanOptions(
            config_path=CONFIGS / "Qwen3-235B-A22B.json",
            target="ascend-a2",
            device="910b3",
            devices=8,
        )
    )
    assert (plan.layout.tp, plan.layout.dp, plan.layout.nodes, plan.layout.dp_local) == (8, 2, 2, 1)
    head, worker = plan.commands
    head_flags = flag_map(engine_argv(plan, head))
    worker_flags = flag_map(engine_argv(plan, worker))
    assert head_flags["--data-parallel-size"] == "2"
    assert head_flags["--data-parallel-address"] == "${HEAD_IP}"
    assert "--headless" not in head_flags
    assert worker_flags["--headless"] == ""
    assert worker_flags["--data-parallel-start-rank"] == "1"
    assert plan.env_value("HCCL_BUFFSIZE") == "1024"
    assert plan.env_value("HCCL_IF_IP") == "${LOCAL_IP}"


def test_seed_004_glm47_fp8_on_one_a2_node(tmp_path: Path) -> None:
    plan = seed_plan(SEEDS["seeds"][2], tmp_path)
    flags = flag_map(engine_argv(plan, plan.commands[0]))
    # where the seed (the v0.18.0 GLM4.x tutorial's command) is sound, the plan says the same
    assert (plan.layout.tp, plan.layout.dp, plan.layout.nodes) == (8, 1, 1)
    assert "--enable-expert-parallel" in flags and "--async-scheduling" in flags
    assert flags["--max-num-batched-tokens"] == "8192"
    assert json.loads(flags["--compilation-config.cudagraph_mode"]) == "FULL_DECODE_ONLY"
    assert json.loads(flags["--additional-config.enable_shared_expert_dp"]) is True
    assert (
        json.loads(flags["--additional-config.ascend_fusion_config.fusion_ops_gmmswigluquant"])
        is False
    )
    for name, value in (("HCCL_OP_EXPANSION_MODE", "AIV"), ("VLLM_ASCEND_ENABLE_FLASHCOMM1", "1")):
        assert plan.env_value(name) == value
    # where it is not: the FP8 checkpoint is converted to Ascend W8A8_DYNAMIC first
    assert plan.conversion is not None and plan.conversion.argv[-1] == "w8a8-dynamic"
    assert flags["--quantization"] == "ascend"
    # and the plan records where adaptgate disagrees with the seeds about an FP8 GLM on Ascend
    assert [d.seed for d in plan.seed_disagreements] == ["000", "001", "004"]
    assert "_detect_quant_type" in plan.seed_disagreements[-1].quote
