"""`adaptgate accuracy URL --json` against the real vLLM CPU build serving the real SmolLM2-135M-
Instruct: the built-in task scores clearly above zero in English and in Chinese, with a 95%
interval that excludes zero (measured: en 0.425 [0.285, 0.578], zh 0.200 [0.105, 0.348])."""

from __future__ import annotations

import json

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.e2e,
    pytest.mark.timeout(1200),
    pytest.mark.usefixtures("lm_eval_installed"),
]


def test_smollm2_scores_above_zero_on_the_builtin_task(
    smollm2_model, vllm_server, adaptgate_cli, tmp_path
):
    model = smollm2_model(format="bf16")
    with vllm_server(model, tmp_path, name="smollm2", max_model_len=1024) as server:
        done = adaptgate_cli("accuracy", server.url, "--model", "smollm2", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["kind"] == "accuracy" and result["chat_template"] is True
    assert result["verdict"] == "INCONCLUSIVE" and "no baseline" in result["reason"]["text"]
    tasks = {t["task"]: t for t in result["tasks"]}
    assert set(tasks) == {"adaptgate_basic_en", "adaptgate_basic_zh"}
    for t in tasks.values():
        assert t["samples"] == 40
        assert 0 < t["ci"]["low"] <= t["accuracy"] <= t["ci"]["high"] < 1, t
