"""issue 19: the serving knowledge's sentences are data in both languages -- every row's reason,
cause, fix, title and note has its Chinese beside it (``<field>_zh``), with the same
{placeholders} -- and a plan renders them in the reader's language."""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any

import pytest

from adaptgate.serve.doctor import signatures
from adaptgate.serve.knowledge import env_knowledge, kernel_knowledge, operator_knowledge, recipes
from adaptgate.serve.models import PlanOptions
from adaptgate.serve.plan import build_plan

CJK = re.compile(r"[\u4e00-\u9fff]")
CONFIGS = Path(__file__).parents[2] / "data" / "configs"


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def _rows() -> list[tuple[str, dict[str, Any], str]]:
    """(where, row, field) of every sentence the report shows."""
    env, rec, kern = env_knowledge(), recipes(), kernel_knowledge()
    rows = [("env.yaml variables", r, "reason") for r in env["variables"]]
    rows += [("env.yaml omitted", r, "reason") for r in env["omitted"]]
    rows += [("recipes.yaml", r, "reason") for r in rec["additional_config"]]
    rows += [("recipes.yaml retired", r, "reason") for r in rec["retired_additional_config"]]
    for name, entry in operator_knowledge()["operators"].items():
        rows.append((f"operators.yaml {name}", entry, "title"))
        rows += [
            (f"operators.yaml {name} {p}", entry[p], "note") for p in ("ascend", "cuda", "cpu")
        ]
    rows += [("kernels.yaml fusions", r, "reason") for r in kern["release_fusions"]]
    rows += [("kernels.yaml kernels", r, f) for r in kern["kernels"] for f in ("title", "reason")]
    rows += [("kernels.yaml kernels", r, "off_reason") for r in kern["kernels"]]
    rows += [("kernels.yaml edits", r, "off_reason") for r in kern["source_edits"]]
    return rows


@pytest.mark.parametrize("where,row,field", _rows())
def test_every_knowledge_sentence_has_chinese_beside_it(
    where: str, row: dict[str, Any], field: str
) -> None:
    zh = row.get(f"{field}_zh")
    # a sentence is in Chinese; a bare name (npu_swiglu, VocabParallelEmbedding) stays as it is
    assert zh and (CJK.search(zh) or zh == row[field]), (where, row[field])
    assert _fields(zh) == _fields(row[field]), (where, row[field])


def test_every_doctor_signature_has_both_languages_with_the_same_placeholders() -> None:
    for sig in signatures():
        for said in (sig.title, sig.cause, sig.fix):
            assert said.zh and CJK.search(said.zh), (sig.id, said.text)
            assert _fields(said.zh) == _fields(said.text), (sig.id, said.text)


def test_a_plan_gives_each_reason_in_both_languages() -> None:
    plan = build_plan(PlanOptions(config_path=CONFIGS / "Qwen3-8B.json", target="ascend-a2"))
    host = plan.flag("--host")
    assert host is not None and host.reason.text == (
        "listen on every interface so clients (and other nodes) can reach it"
    )
    assert host.reason.in_lang("zh") == "监听所有网卡，客户端（及其他节点）均可访问"
    spawn = next(v for v in plan.env if v.name == "VLLM_WORKER_MULTIPROC_METHOD")
    assert "aclInit error 107001" in spawn.reason.text and "aclInit 错误 107001" in (
        spawn.reason.in_lang("zh")
    )
    extra = plan.flag("--additional-config")
    assert extra is not None and extra.reason.text.startswith("enable_cpu_binding: bind each")
    assert extra.reason.in_lang("zh").startswith("enable_cpu_binding 配置：将每个 worker")
    # the same reason in run.json reads back with both languages
    again = type(plan).model_validate_json(plan.model_dump_json())
    assert again.flag("--additional-config").reason.in_lang("zh") == extra.reason.in_lang("zh")  # type: ignore[union-attr]
