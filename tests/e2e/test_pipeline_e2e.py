"""`adaptgate run` end to end with the real vLLM CPU build (issue 8): every gate on the tiny FP8
model, the report checked against run.json in both languages, and a planted fault (a converted
checkpoint with corrupted scales) that must end with the precision gate FAILED and exit 1."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "report"))
from report_provenance import allowed_tokens, html_text, markdown_numbers, tokens

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(1800),
    pytest.mark.usefixtures("vllm_python"),  # skips without the engine, fails so in CI
]


def gates_of(run_dir: Path) -> dict[str, dict]:
    record = json.loads((run_dir / "run.json").read_text())
    return {g["name"]: g for g in record["gates"]}


def test_every_gate_on_the_tiny_fp8_model_and_the_report_comes_from_run_json(
    tiny_model, tmp_path, adaptgate_cli
):
    model = tiny_model(arch="qwen3", format="fp8_block")
    run_dir = tmp_path / "run"
    done = adaptgate_cli(
        "run",
        str(model),
        "--target",
        "cpu",
        "--convert-to",
        "+w8a8-dynamic",
        "--kv-cache-dtype",
        "all",
        "--run-dir",
        str(run_dir),
        cwd=tmp_path,
    )
    gates = gates_of(run_dir)
    assert list(gates) == [
        "inspect",
        "convert",
        "kvcache",
        "serve",
        "smoke",
        "precision",
        "bench",
        "report",
    ]
    statuses = {n: g["status"] for n, g in gates.items()}
    bench = statuses.pop("bench")
    assert statuses == dict.fromkeys(statuses, "PASS"), done.stderr[-3000:]
    # on a loaded 2-core machine (vLLM keeps one core) the client can fall behind its schedule:
    # the bench gate must then say so and fail, never report client-limited numbers as valid
    assert bench == "PASS" or "client" in gates["bench"]["reason"], gates["bench"]["reason"]
    assert done.returncode == (0 if bench == "PASS" else 1), done.stderr[-3000:]
    # the served model is the converted one; the server is gone once the run ended
    assert gates["convert"]["summary"]["output_dir"].startswith(str(run_dir))
    assert gates["bench"]["summary"]
    also = gates["convert"]["summary"]["also"]["w8a8-dynamic"]  # the demo converts both ways
    assert also["verify_problems"] == 0 and 0 < also["int8_rel_error"] < 0.02
    record = json.loads((run_dir / "run.json").read_text())
    allowed = allowed_tokens(record) | tokens(str(run_dir)) | tokens(str(model))
    for lang, md_name, html_name in (
        ("en", "REPORT.md", "REPORT.html"),
        ("zh", "REPORT.zh.md", "REPORT.zh.html"),
    ):
        md = (run_dir / md_name).read_text()
        html = (run_dir / html_name).read_text()
        assert not markdown_numbers(md) - allowed, lang
        assert not tokens(html_text(html)) - allowed, lang
    assert "精度" in (run_dir / "REPORT.zh.md").read_text()


def test_corrupted_scales_in_the_converted_checkpoint_fail_precision_up_front(
    tiny_model, tmp_path, adaptgate_cli
):
    model = tiny_model(arch="qwen3", format="fp8_block")
    run_dir = tmp_path / "run"
    first = ["run", str(model), "--target", "cpu", "--convert-to", "w8a8-dynamic"]
    done = adaptgate_cli(
        *first, "--only", "inspect,convert", "--run-dir", str(run_dir), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    converted = Path(gates_of(run_dir)["convert"]["summary"]["output_dir"])
    # plant the fault: one layer's int8 weight scales scrambled in the converted output
    for shard in sorted(converted.glob("*.safetensors")):
        tensors = load_file(shard)
        names = [n for n in tensors if n.endswith("layers.1.mlp.down_proj.weight_scale")]
        if names:
            scale = tensors[names[0]]
            tensors[names[0]] = (
                scale[torch.randperm(scale.shape[0], generator=torch.Generator().manual_seed(0))]
                * 4
            )
            save_file(tensors, shard, metadata={"format": "pt"})
            break
    else:
        pytest.fail("no down_proj weight_scale in the converted checkpoint")
    done = adaptgate_cli(
        *first,
        "--only",
        "inspect,convert,precision,report",
        "--run-dir",
        str(run_dir),
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    gates = gates_of(run_dir)
    assert gates["convert"]["status"] == "PASS"  # kept: the corruption came after it
    assert gates["precision"]["status"] == "FAIL"
    assert gates["precision"]["summary"]["conversion_localized"] == "model.layers.1"
    report = (run_dir / "REPORT.md").read_text()
    head = report[: report.index("\n## ")]  # above the first section: the verdict
    assert "FAIL" in head, head[:2000]
    assert "model.layers.1" in head
