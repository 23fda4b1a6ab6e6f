"""`adaptgate run` end to end with the real vLLM CPU build on the real SmolLM2 model: every gate
on the clean FP8-block model (PASS, the report checked against run.json in both languages), and
planted faults that must each fail their gate with exit 1 -- one layer's weights scaled in the
served model (precision, served), a served chat template that differs from the checkpoint's
(smoke), and corrupted scales in a converted checkpoint (precision, conversion; on the tiny model,
see that test)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "report"))
from report_language import english_runs
from report_provenance import allowed_tokens, html_text, markdown_numbers, tokens

# one layer's MLP output scaled: calibrated with benchmarks/calibrate_served_faults.py
PLANTED_FACTOR = 1.5

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(1800),
    pytest.mark.usefixtures("vllm_python"),  # skips without the engine, fails so in CI
]


def gates_of(run_dir: Path) -> dict[str, dict]:
    record = json.loads((run_dir / "run.json").read_text())
    return {g["name"]: g for g in record["gates"]}


def test_every_gate_on_the_real_smollm2_fp8_model_and_the_report_comes_from_run_json(
    smollm2_model, tmp_path, adaptgate_cli
):
    """The demo: SmolLM2-135M-Instruct quantized to FP8 block 128x128 (576 and 192 are not
    multiples of 128), converted to BF16 (served) and W8A8_DYNAMIC, both FP8 KV caches judged,
    served by vLLM CPU, smoked, compared with the CPU FP32 reference, its task accuracy measured
    through lm-eval, benchmarked."""
    model = smollm2_model(format="fp8_block")
    run_dir = tmp_path / "run"
    done = adaptgate_cli(
        "run",
        str(model),
        "--target",
        "cpu",
        "--convert-to",
        "+w8a8-dynamic",
        "--kv-formats",
        "fp8_e4m3,fp8_e5m2",
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
        "accuracy",
        "bench",
        "report",
    ]
    statuses = {n: g["status"] for n, g in gates.items()}
    bench = statuses.pop("bench")
    # the built-in task through lm-eval on the served real model: recorded with its interval;
    # with no --accuracy-baseline it cannot be judged, so INCONCLUSIVE (never a PASS unjudged)
    accuracy = gates["accuracy"]
    assert statuses.pop("accuracy") == "INCONCLUSIVE", accuracy["reason"]
    assert "no baseline to compare against" in accuracy["reason"]
    assert accuracy["result"]["chat_template"] is True
    for task in accuracy["result"]["tasks"]:
        assert task["samples"] == 40
        assert 0 < task["ci"]["low"] <= task["accuracy"] <= task["ci"]["high"], task
    assert statuses == dict.fromkeys(statuses, "PASS"), done.stderr[-3000:]
    # the client runs on the CPU serve left free; should other work still starve it through
    # every retry, the gate says so -- INCONCLUSIVE, never PASS, and not a failure of the model
    assert bench in ("PASS", "INCONCLUSIVE"), gates["bench"]["reason"]
    assert done.returncode == 0, done.stderr[-3000:]
    if bench == "INCONCLUSIVE":
        assert "client" in gates["bench"]["reason"]
        assert "warning: bench is INCONCLUSIVE" in done.stderr
    assert (
        gates["serve"]["summary"]["client_cpus"]
        == gates["bench"]["result"]["client"]["client_cpus"]
    )
    # a real model: the quality checks pass (a random-weight model fails them)
    smoke = {c["id"]: c for c in gates["smoke"]["result"]["checks"]}
    assert smoke["arithmetic"]["status"] == "PASS" and smoke["chinese"]["status"] == "PASS"
    assert gates["smoke"]["result"]["quality_verdict"] == "PASS"
    served = gates["precision"]["result"]["served"]
    texts = {p["id"]: p["server_text"] for p in served["prompts"]}
    assert served["verdict"] == "PASS" and None not in texts.values()
    assert texts["english"].strip()  # what the server answered, for the report to show
    kv = gates["kvcache"]
    assert kv["summary"]["verdicts"].keys() == {"fp8_e4m3", "fp8_e5m2"}
    # both caches measured on vLLM CPU too, next to the simulated verdict: the engine's KL
    # against the FP32 reference with auto is the bf16 floor, the FP8 caches add to it
    engine = kv["result"]["engine"]
    assert engine["skipped"] is None and engine["auto"]["positions"] > 1000, engine
    for fmt in kv["result"]["formats"]:
        on = fmt["on_engine"]
        assert on["verdict"] in ("SAFE", "RISKY", "UNSAFE"), on
        assert on["arm"]["kl_mean"] > engine["auto"]["kl_mean"], (fmt["format"], on)
        assert kv["summary"][f"{fmt['format']}_engine_kl_mean"] == on["kl_mean"]
    # the served model is the converted one; the server is gone once the run ended
    assert gates["convert"]["summary"]["output_dir"].startswith(str(run_dir))
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
    # issue 19: the zh report of the demo run holds no English sentence (names, commands, code,
    # quoted model output and units only)
    english = english_runs((run_dir / "REPORT.zh.md").read_text())
    assert not english, english
    assert "Measured on the engine" in (run_dir / "REPORT.md").read_text()
    assert "引擎实测结论" in (run_dir / "REPORT.zh.md").read_text()
    for name, title in (("REPORT.md", "Task accuracy"), ("REPORT.zh.md", "任务准确率")):
        lines = (run_dir / name).read_text().splitlines()
        assert any(line.startswith("## ") and line.endswith(title) for line in lines), name


def test_corrupted_scales_in_the_converted_checkpoint_fail_precision_up_front(
    tiny_model, tmp_path, adaptgate_cli
):
    """A W8A8_DYNAMIC conversion, then one layer's int8 weight scales scrambled in the output:
    the conversion comparison fails and names the layer. On the tiny model, whose clean W8A8
    conversion passes; on the real SmolLM2 the clean W8A8_DYNAMIC conversion already fails the
    comparison (logits KL 0.045 > 0.005, last two layers; measured), so a planted scale fault
    there is not told apart by the verdict."""
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


def test_a_served_chat_template_that_differs_from_the_checkpoints_fails_smoke(
    smollm2_model, tmp_path, adaptgate_cli, vllm_server
):
    """The real model served by vLLM with an overridden chat template (`--chat-template`: the
    turns no longer end with a newline). The server still answers every protocol check; the
    differential check renders the same chat with the checkpoint's own template and fails at the
    first differing token. Run with --url and --only smoke: the run probes the server (inspect
    and serve come along) and measures it."""
    source = smollm2_model(format="bf16")
    template = json.loads((source / "tokenizer_config.json").read_text())["chat_template"]
    overridden = template.replace("'<|im_end|>' + '\n'", "'<|im_end|>'")
    assert overridden != template
    planted = tmp_path / "overridden.jinja"
    planted.write_text(overridden)
    with vllm_server(source, tmp_path, "--chat-template", str(planted), name="smollm2") as server:
        run_dir = tmp_path / "run"
        done = adaptgate_cli(
            "run", str(source), "--target", "cpu", "--url", server.url, "--only", "smoke",
            "--run-dir", str(run_dir), cwd=tmp_path,
        )  # fmt: skip
    gates = gates_of(run_dir)
    assert done.returncode == 1, done.stderr[-3000:]
    assert gates["serve"]["status"] == "PASS" and gates["serve"]["summary"]["external"]
    smoke = gates["smoke"]
    assert smoke["status"] == "FAIL" and smoke["summary"]["failed_protocol"] == ["chat_template"]
    check = {c["id"]: c for c in smoke["result"]["checks"]}["chat_template"]
    reason = check["reason"]["text"]
    assert "differs from the checkpoint's template at token" in reason
    assert "checkpoint id 198 '\\n'" in reason, reason  # the lost newline


def test_a_served_model_with_one_layers_weights_scaled_fails_precision(
    smollm2_model, tmp_path, adaptgate_cli, vllm_server
):
    """The real model served with one layer's MLP output weight scaled by PLANTED_FACTOR (a
    fault that loads and answers: the model still talks). The served-model check compares the
    server with the CPU FP32 reference of the clean checkpoint and fails; the clean model
    passes the same check in the pipeline test above."""
    source = smollm2_model(format="bf16")
    planted = tmp_path / "planted"
    shutil.copytree(source, planted)
    weight = "model.layers.15.mlp.down_proj.weight"
    for shard in sorted(planted.glob("*.safetensors")):
        tensors = load_file(shard)
        if weight in tensors:
            tensors[weight] = (tensors[weight].float() * PLANTED_FACTOR).to(torch.bfloat16)
            save_file(tensors, shard, metadata={"format": "pt"})
            break
    else:
        pytest.fail(f"no {weight} in the SmolLM2 checkpoint")
    with vllm_server(planted, tmp_path, name="smollm2") as server:
        run_dir = tmp_path / "run"
        done = adaptgate_cli(
            "run", str(source), "--target", "cpu", "--url", server.url, "--only", "precision",
            "--run-dir", str(run_dir), cwd=tmp_path,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    precision = gates_of(run_dir)["precision"]
    assert precision["status"] == "FAIL", precision["reason"]
    served = precision["result"]["served"]
    assert served["verdict"] == "FAIL"
    failed = {c["metric"] for c in served["checks"] if not c["passed"]}
    assert failed, served["checks"]
    assert precision["reason"].startswith("served FAIL"), precision["reason"]
