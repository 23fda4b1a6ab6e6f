"""The operator gate: a static scan of the model's code against a vllm-ascend tree (fixture
trees under tests/data/opscan, and the installed vLLM CPU source)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.conftest import skip_or_fail_in_ci

from adaptgate.cli.main import cli
from adaptgate.errors import UsageError
from adaptgate.inspect.opscan import OperatorScan, scan_model, scan_operators

DATA = Path(__file__).parents[2] / "data" / "opscan"
VLLM = DATA / "vllm_tree"
V011 = DATA / "ascend_v0.11.0rc2"
V023 = DATA / "ascend_v0.23.0"


def _rows(scan: OperatorScan) -> dict[str, tuple[str, str, str]]:
    return {r.op: (r.kind, r.status, r.evidence) for r in scan.rows}


def test_fixture_model_resolves_through_the_registry() -> None:
    scan = scan_operators("TinyForCausalLM", vllm_src=VLLM, vllm_ascend_src=V023)
    assert scan.model_class == "vllm.model_executor.models.tiny.TinyForCausalLM"
    assert scan.model_source == "vllm/model_executor/models/tiny.py:33"
    assert (scan.vllm_version, scan.vllm_ascend_release) == ("0.23.0", "0.23.0")
    rows = _rows(scan)
    # get_rope counts as the class it returns; a base class (ColumnParallelLinear) built only
    # through QKVParallelLinear.__init__ and the isinstance-tested class are not operators
    assert set(rows) == {
        "QKVParallelLinear",
        "RowParallelLinear",
        "RotaryEmbedding",
        "Attention",
        "SiluAndMul",
        "RMSNorm",
    }
    assert rows["RMSNorm"] == ("custom op", "supported", "vllm_ascend/utils.py:24 (AscendRMSNorm)")
    assert rows["QKVParallelLinear"][:2] == ("custom op", "supported")
    kind, status, evidence = rows["Attention"]
    assert (kind, status) == ("layer", "supported")
    assert "patch/worker/patch_tiny.py:6" in evidence  # patched through an alias
    assert "platform.py:3" in evidence and "get_attn_backend_cls" in evidence
    assert scan.count("needs verification") == 0


def test_ops_absent_from_the_ascend_tree_need_verification_by_name() -> None:
    scan = scan_operators("NovelForCausalLM", vllm_src=VLLM, vllm_ascend_src=V011)
    pending = {r.op: r for r in scan.rows if r.status == "needs verification"}
    assert set(pending) == {"RotaryEmbedding", "FancyNorm", "fp8", "novel_gate_kernel"}
    assert pending["FancyNorm"].kind == "custom op"
    assert pending["FancyNorm"].detail == "CustomOp 'fancy_norm'"
    assert pending["novel_gate_kernel"].kind == "triton"
    assert pending["fp8"].kind == "quant"
    assert all(r.evidence.startswith("Stage A: vllm-ascend 0.11.0rc2") for r in pending.values())
    assert "supported" not in {r.status for r in pending.values()}
    assert scan.count("supported") == 5


def test_release_keyed_evidence_conditional_registration_and_patches() -> None:
    scan = scan_operators(
        "NovelForCausalLM",
        vllm_src=VLLM,
        vllm_ascend_src=V023,
        config={"quantization_config": {"quant_method": "fp8"}},
    )
    rows = _rows(scan)
    # registered only `if vllm_version_is("0.23.0")`: not claimed for every vLLM
    _, status, evidence = rows["FancyNorm"]
    assert status == "needs verification"
    assert "vllm_ascend/utils.py:29" in evidence and "vllm_version_is('0.23.0')" in evidence
    # the Triton kernel replaced by a patch; fp8 registered by fp8_config.py
    assert rows["novel_gate_kernel"][1:] == (
        "supported",
        "vllm_ascend/patch/worker/patch_triton.py:5 "
        "(vllm.model_executor.models.novel.novel_gate_kernel)",
    )
    # a registered method without per-layer schemes: the registration is evidence, not proof
    assert rows["fp8"][1] == "needs verification"
    assert "registered at vllm_ascend/quantization/fp8_config.py:7" in rows["fp8"][2]
    assert [r.op for r in scan.rows].count("fp8") == 1  # model code and config.json: one row


def test_modelslim_schemes_are_checked() -> None:
    scan = scan_operators(
        "TinyForCausalLM",
        vllm_src=VLLM,
        vllm_ascend_src=V011,
        config={"quantization_config": {"quant_method": "ascend"}},
        quant_types=["W8A8_DYNAMIC", "W4A4_NOVEL", "FLOAT"],
    )
    rows = _rows(scan)
    assert rows["ascend"][1] == "supported"  # constant imported from vllm_ascend.utils
    assert rows["W8A8_DYNAMIC"][1] == "supported"
    assert rows["W4A4_NOVEL"][1] == "needs verification"
    assert "FLOAT" not in rows


def test_without_a_vllm_ascend_tree_nothing_is_supported() -> None:
    scan = scan_operators("NovelForCausalLM", vllm_src=VLLM, vllm_ascend_src=None)
    if importlib.util.find_spec("vllm_ascend") is not None:
        pytest.skip("vllm_ascend is installed here: the default tree is that one")
    assert scan.rows and {r.status for r in scan.rows} == {"not checked"}
    assert all("no vllm-ascend source" in r.evidence for r in scan.rows)


def test_remote_code_checkpoint_is_scanned() -> None:
    scan = scan_model(str(DATA / "remote_model"), vllm_src=VLLM, vllm_ascend_src=V023)
    assert scan.remote_code and scan.model_class == "modeling_remote.RemoteForCausalLM"
    rows = _rows(scan)
    assert set(rows) == {
        "remote_router_kernel",
        "RemoteBlock",
        "RemoteRMSNorm",
        "nn.Linear",
        "nn.Embedding",
    }
    assert {r[1] for r in rows.values()} == {"needs verification"}
    assert rows["remote_router_kernel"][0] == "triton"
    assert "trust_remote_code" in rows["RemoteRMSNorm"][2]


def test_unknown_architecture_and_bad_paths() -> None:
    scan = scan_operators("NoSuchForCausalLM", vllm_src=VLLM, vllm_ascend_src=V023)
    assert not scan.rows and "not in vLLM's registry" in scan.notes[0]
    with pytest.raises(UsageError, match="--vllm-ascend-src"):
        scan_operators("TinyForCausalLM", vllm_src=VLLM, vllm_ascend_src=DATA)
    with pytest.raises(UsageError, match="no such checkpoint"):
        scan_model("./missing/config.json")


def test_cli_json_and_exit_code() -> None:
    args = ["operators", "NovelForCausalLM", "--vllm-src", str(VLLM)]
    result = CliRunner().invoke(cli, [*args, "--vllm-ascend-src", str(V011), "--json"])
    assert result.exit_code == 1, result.output  # something needs Stage A
    payload = json.loads(result.output)
    assert payload["vllm_ascend_release"] == "0.11.0rc2"
    assert payload["vllm_ascend_release_from"] == "vllm_ascend/_version.py"
    tiny = ["operators", "TinyForCausalLM", "--vllm-src", str(VLLM), "--vllm-ascend-src", str(V023)]
    done = CliRunner().invoke(cli, tiny)
    assert done.exit_code == 0, done.output
    assert "6 operators: 6 supported" in done.output


def _installed_vllm() -> None:
    if importlib.util.find_spec("vllm") is None:
        skip_or_fail_in_ci("vllm (the CPU build) is not installed: make setup installs it")


@pytest.mark.parametrize("arch", ["LlamaForCausalLM", "Qwen3ForCausalLM"])
def test_installed_vllm_dense_models(arch: str) -> None:
    _installed_vllm()
    scan = scan_operators(arch, vllm_ascend_src=V023)
    assert scan.model_source and scan.model_source.startswith("vllm/model_executor/models/")
    ops = {r.op: r for r in scan.rows}
    for op in ("RMSNorm", "RotaryEmbedding", "Attention", "QKVParallelLinear", "SiluAndMul"):
        assert op in ops, (op, sorted(ops))
    assert ops["RMSNorm"].kind == "custom op" and ops["RMSNorm"].status == "supported"
    assert ops["Attention"].attention and ops["Attention"].status == "supported"
    if not (scan.vllm_version or "").startswith("0.23."):  # the pairing is named
        assert any("vllm-ascend 0.23.0" in n and "--vllm-src" in n for n in scan.notes)


def test_installed_vllm_moe_model() -> None:
    _installed_vllm()
    scan = scan_operators("Glm4MoeForCausalLM", vllm_ascend_src=V011)
    ops = {r.op: r for r in scan.rows}
    assert {"RMSNorm", "Attention", "GateLinear"} <= set(ops)
    # the fixture registers no MoE op: named, never "supported"
    assert ops["GateLinear"].status == "needs verification"
