"""The plan turns adaptgate's qk_rmsnorm kernel on only where the vllm-ascend release has no fused
q/k-norm (kernels.yaml), with its install step and its reasons in the runbook; and seed 002's
moe_mlp.py edit where the release needs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adaptgate.kernels import QK_RMSNORM_ENV
from adaptgate.serve.kernel_plan import WHEEL
from adaptgate.serve.knowledge import PlanContext, kernel_knowledge, when_holds
from adaptgate.serve.models import LaunchPlan, PlanOptions
from adaptgate.serve.plan import build_plan
from adaptgate.serve.runbook import deployment_record, render_runbook, write_plan_outputs

CONFIGS = Path(__file__).parents[2] / "data" / "configs"
QWEN3_235B = CONFIGS / "Qwen3-235B-A22B.json"


def _plan(release: str, config: Path = QWEN3_235B, target: str = "ascend-a2") -> LaunchPlan:
    options = PlanOptions(
        config_path=config, target=target, device="910b3" if target == "ascend-a2" else None,
        devices=8, release=release,
    )  # fmt: skip
    return build_plan(options)


def _w8a8(tmp_path: Path) -> Path:
    """Seed 002's checkpoint shape: config.json + msModelSlim's quant_model_description.json."""
    model = tmp_path / "Qwen3-235B-A22B-w8a8"
    model.mkdir(parents=True)
    shutil.copy(QWEN3_235B, model / "config.json")
    desc = {"version": "1.0.0", "model_quant_type": "W8A8"}
    (model / "quant_model_description.json").write_text(json.dumps(desc))
    return model / "config.json"


def _kernel(plan: LaunchPlan):  # type: ignore[no-untyped-def]
    return next(k for k in plan.kernels if k.name == "qk_rmsnorm")


def test_release_without_the_fusion_turns_the_kernel_on_and_explains_it(tmp_path: Path) -> None:
    plan = _plan("0.11.0")
    kernel = _kernel(plan)
    assert kernel.enabled and kernel.env == QK_RMSNORM_ENV
    assert "split + two RMSNorm" in kernel.reason
    assert "v0.11.0rc2" in (kernel.source or "")
    assert plan.env_value(QK_RMSNORM_ENV) == "1"
    assert all(n.env[-1].name == QK_RMSNORM_ENV for n in plan.commands)  # every node exports it
    step = next(s for s in plan.setup if s.name == "qk_rmsnorm")
    assert step.container[:3] == [
        ["pip", "uninstall", "-y", "triton"],
        ["pip", "install", "triton-ascend==3.2.0"],
        ["pip", "install", "--no-deps", "--force-reinstall", WHEEL],
    ]
    assert step.host == [
        ["pip", "wheel", "--no-deps", "--wheel-dir", str(Path(WHEEL).parent), "${ADAPTGATE_SRC}"]
    ]
    compile(step.container[-1][2], "probe", "exec")  # the check after the install is Python
    qk_norm = next(o for o in plan.operators if o.op == "qk_norm")
    assert "qk_rmsnorm Triton kernel" in qk_norm.note.text

    files = write_plan_outputs(plan, tmp_path)
    runbook = (tmp_path / "RUNBOOK.md").read_text("utf-8")
    assert "## Kernels" in runbook
    assert f"| on (`{QK_RMSNORM_ENV}=1`) |" in runbook
    assert "pip install triton-ascend==3.2.0" in runbook
    assert "Seed 002 used the nightly 3.2.0.dev20250914 wheel" in runbook
    assert ': "${ADAPTGATE_SRC:?set ADAPTGATE_SRC:' in runbook  # the placeholder is guarded
    # the step comes after the container and before the launch
    assert runbook.index("Start the container") < runbook.index("Install adaptgate's fused")
    assert runbook.index("Install adaptgate's fused") < runbook.index("Launch vLLM")
    scripts = [f for f in files if f.name.startswith("launch-node")]
    assert scripts and all(f"export {QK_RMSNORM_ENV}=1" in f.read_text() for f in scripts)
    record = deployment_record(plan)
    assert record["kernels"][0]["enabled"] is True
    assert record["setup"][0]["container"][1] == "pip install triton-ascend==3.2.0"


@pytest.mark.parametrize("release", ["0.18.0", "0.13.0", "v0.23.0", "0.26.0rc1"])
def test_release_with_the_fusion_keeps_the_kernel_off_and_says_why(release: str) -> None:
    plan = _plan(release)
    kernel = _kernel(plan)
    assert not kernel.enabled
    assert kernel.reason.startswith("off: vllm-ascend fuses the qkv split")
    assert "qknorm_rope_fusion_pass.py" in (kernel.source or "")
    assert plan.env_value(QK_RMSNORM_ENV) is None
    assert plan.setup == []
    runbook = render_runbook(plan)
    assert "| off | off: vllm-ascend fuses" in runbook
    assert "triton-ascend" not in runbook.split("## Kernels")[0]  # no install step
    qk_norm = next(o for o in plan.operators if o.op == "qk_norm")
    assert "fuse_qknorm_rope" in qk_norm.note.text  # the release's own fusion, as before


def test_release_boundary_is_0_13() -> None:
    """The fusion pass first appears in v0.13.0rc1 (kernels.yaml, ascend-qknorm-fusion)."""
    assert _kernel(_plan("0.12.0rc1")).enabled
    assert not _kernel(_plan("0.13.0rc1")).enabled


def test_off_where_adaptgate_does_not_plan_it() -> None:
    cuda = _plan("0.18.0", target="cuda")
    assert not _kernel(cuda).enabled
    assert "only for vllm-ascend v0.11 and later" in _kernel(cuda).reason
    assert cuda.env_value(QK_RMSNORM_ENV) is None
    old = _plan("0.10.2rc1")
    assert not _kernel(old).enabled and old.setup == []
    glm = _plan("0.11.0", config=CONFIGS / "GLM-4.5.json", target="ascend-a3")
    assert glm.kernels == []  # not a Qwen3 attention: nothing to say


def test_seed_002_w8a8_on_0_11_gets_the_moe_mlp_edit(tmp_path: Path) -> None:
    plan = _plan("0.11.0rc2", config=_w8a8(tmp_path))
    assert plan.route == "native" and plan.layout.nodes == 1
    names = [s.name for s in plan.setup]
    assert names == ["qk_rmsnorm", "moe_mlp_fusion"]
    edit = plan.setup[1]
    assert "npu_grouped_matmul_swiglu_quant" in edit.reason
    assert "tagged v0.11.0rc2 and v0.11.0 sources do not have the line" in edit.reason
    assert not any("moe_mlp" in o.name for o in plan.omitted)
    # BF16 on 0.11 and W8A8 on 0.18: the edit is left out, and the runbook says why
    for other in (_plan("0.11.0"), _plan("0.18.0", config=_w8a8(tmp_path / "b"))):
        assert "moe_mlp_fusion" not in [s.name for s in other.setup]
        omitted = next(o for o in other.omitted if "moe_mlp.py" in o.name)
        assert "only for W8A8 MoE on vllm-ascend 0.11" in omitted.reason.text
        assert omitted.reason.text in render_runbook(other)


MOE_MLP = """import torch


def quant_apply_mlp(hidden_states, w1, fusion: bool = False):
{first}    if fusion:
        return "fused"
    return "unfused"
"""


@pytest.mark.parametrize(
    ("first", "removed"), [("    fusion = False\n", True), ("", False)], ids=["seed-image", "tag"]
)
def test_the_moe_mlp_edit_removes_only_that_statement(
    tmp_path: Path, first: str, removed: bool
) -> None:
    """The generated command on a stand-in vllm_ascend package: seed 002's image (with the
    line) loses exactly that line; the tagged source (without it) is left as it was."""
    plan = _plan("0.11.0rc2", config=_w8a8(tmp_path))
    argv = next(s for s in plan.setup if s.name == "moe_mlp_fusion").container[0]
    root = tmp_path / "site"
    target = root / "vllm_ascend" / "ops" / "moe" / "moe_mlp.py"
    target.parent.mkdir(parents=True)
    (root / "vllm_ascend" / "__init__.py").write_text("")
    original = MOE_MLP.format(first=first)
    target.write_text(original)
    env = {**os.environ, "PYTHONPATH": str(root)}
    run = subprocess.run(
        [sys.executable, *argv[1:]], capture_output=True, text=True, env=env, check=True
    )
    after = target.read_text()
    if removed:
        assert after == MOE_MLP.format(first="")
        assert "removed line(s) [5]" in run.stdout
    else:
        assert after == original
        assert "none: nothing to remove" in run.stdout


def test_the_plugin_switch_is_one_name() -> None:
    kernel = next(k for k in kernel_knowledge()["kernels"] if k["name"] == "qk_rmsnorm")
    assert kernel["env"] == QK_RMSNORM_ENV


def test_release_bounds_in_when() -> None:
    when = {"releases": ["0.11", "0.13"]}
    assert when_holds(when, PlanContext(target="ascend-a2", family="qwen3", release=(0, 11)))
    assert when_holds(when, PlanContext(target="ascend-a2", family="qwen3", release=(0, 12)))
    assert not when_holds(when, PlanContext(target="ascend-a2", family="qwen3", release=(0, 13)))
    assert not when_holds(when, PlanContext(target="ascend-a2", family="qwen3", release=(0, 9)))
    assert not when_holds(when, PlanContext(target="ascend-a2", family="qwen3"))  # unknown
    open_ended = {"releases": ["0.13", None]}
    assert when_holds(open_ended, PlanContext(target="cuda", family="x", release=(1, 2)))
