"""The checkpoint consistency lint: clean demo checkpoints give no finding; each planted fault
gives its finding (with a fix), and errors make inspect FAIL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from adaptgate.checkpoint import open_checkpoint
from adaptgate.inspect import InspectOptions, inspect_model
from adaptgate.inspect.lint import compare_side_files, lint_checkpoint


def copy_of(model: Path, tmp_path: Path, name: str = "copy") -> Path:
    return Path(shutil.copytree(model, tmp_path / name))


def edit(path: Path, **changes: Any) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def findings(model: Path) -> dict[str, Any]:
    ckpt = open_checkpoint(str(model))
    return {f.id: f for f in lint_checkpoint(ckpt.root, ckpt.config, ckpt.tensors)}


@pytest.mark.parametrize("arch", ["qwen3", "glm4_moe"])
def test_clean_checkpoints_have_no_finding(tiny_model, arch):
    assert findings(tiny_model(arch=arch, format="fp8_block")) == {}


def test_generation_that_does_not_stop_at_the_end_of_a_turn(tiny_model, tmp_path):
    model = copy_of(tiny_model(arch="qwen3", format="bf16"), tmp_path)
    ids = json.loads((model / "generation_config.json").read_text())["eos_token_id"]
    edit(model / "generation_config.json", eos_token_id=ids[1:])  # <|endoftext|> only
    found = findings(model)
    turn = found["eos_not_end_of_turn"]
    assert turn.severity == "warning" and "<|im_end|>" in turn.message
    assert f"add {ids[0]} to eos_token_id" in turn.fix
    assert found["eos_tokenizer_mismatch"].severity == "warning"  # eos_token is <|im_end|>
    assert found["eos_config_mismatch"].severity == "warning"
    result = inspect_model(InspectOptions(model=str(model), target="cpu"))
    assert result.verdict == "PASS"  # warnings are reported, not a FAIL
    assert any("<|im_end|>" in w.text for w in result.warnings)


def test_stop_ids_outside_the_vocabulary_are_an_error(tiny_model, tmp_path):
    model = copy_of(tiny_model(arch="qwen3", format="bf16"), tmp_path)
    edit(model / "generation_config.json", eos_token_id=[10**6])
    assert findings(model)["eos_out_of_vocab"].severity == "error"


def test_untied_without_a_head_fails_inspect(tiny_model, tmp_path):
    model = copy_of(tiny_model(arch="qwen3", format="bf16", tie_embeddings=True), tmp_path)
    assert findings(model) == {}
    edit(model / "config.json", tie_word_embeddings=False)
    assert findings(model)["untied_without_lm_head"].severity == "error"
    result = inspect_model(InspectOptions(model=str(model), target="cpu"))
    assert result.verdict == "FAIL" and result.exit_code == 1
    assert result.reason.text.startswith("checkpoint lint: tie_word_embeddings is false")


def test_context_beyond_the_rope_scaling(tiny_model, tmp_path):
    model = copy_of(tiny_model(arch="qwen3", format="bf16"), tmp_path)
    scaling = {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 8192}
    edit(model / "config.json", rope_scaling=scaling, max_position_embeddings=40960)
    found = findings(model)["context_beyond_rope"]
    assert "16384" in found.message and "--max-model-len 16384" in found.fix
    edit(model / "config.json", max_position_embeddings=16384)
    assert "context_beyond_rope" not in findings(model)


def test_a_converted_checkpoint_keeps_the_sources_side_files(tiny_model, tmp_path):
    source = tiny_model(arch="qwen3", format="fp8_block")
    out = copy_of(source, tmp_path)
    edit(out / "config.json", quantization_config=None, torch_dtype="float16")
    assert compare_side_files(source, out) == []  # what a conversion rewrites is allowed
    edit(out / "config.json", hidden_act="gelu")
    tok = json.loads((out / "tokenizer_config.json").read_text())
    edit(out / "tokenizer_config.json", chat_template=tok["chat_template"].replace("\n", " "))
    (out / "generation_config.json").unlink()
    found = {(f.id, f.message.split(" of ")[0]) for f in compare_side_files(source, out)}
    assert ("config_changed", "config.json") in found
    assert "rope_changed" not in {f for f, _ in found}
    assert ("side_file_changed", "tokenizer_config.json") in found
    assert ("side_file_changed", "generation_config.json") in found
    assert all(f.severity == "error" for f in compare_side_files(source, out))


# -- rope parameters --------------------------------------------------------------------------


def rope_findings(config: dict[str, Any]) -> list[Any]:
    return [f for f in lint_checkpoint(Path("/nonexistent"), config, None) if "rope" in f.id]


@pytest.mark.parametrize("arch", ["qwen3", "qwen3_moe", "glm4_moe"])
def test_the_demo_configs_agree_with_their_family(tiny_model, arch):
    """The demo configs carry the official checkpoints' rope (Qwen/Qwen3-8B, Qwen3-30B-A3B,
    zai-org/GLM-4.5), so the family check matches them -- and stays silent."""
    config = open_checkpoint(str(tiny_model(arch=arch, format="bf16"))).config
    from adaptgate.inspect.lint import rope_facts

    assert any(f.model_type == config["model_type"] for f in rope_facts().checkpoints)
    assert rope_findings(config) == []


def test_the_real_smollm2_config_is_clean_and_a_changed_theta_is_named(smollm2_model, tmp_path):
    model = copy_of(smollm2_model(format="bf16"), tmp_path)
    assert findings(model) == {}  # every lint, on the real model's config as the project builds it
    edit(model / "config.json", rope_theta=10000.0)
    found = findings(model)["rope_family"]
    assert found.severity == "warning"
    assert "rope_theta 10000.0 where SmolLM2-135M has 100000" in found.message
    assert "huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct" in found.message
    assert "rope_theta to 100000" in found.fix
    result = inspect_model(InspectOptions(model=str(model), target="cpu"))
    assert result.verdict == "PASS"  # a fine-tune may change rope_theta: reported, not a FAIL
    assert any("rope_theta 10000.0" in w.text for w in result.warnings)


QWEN3 = {"model_type": "qwen3", "max_position_embeddings": 40960, "hidden_size": 4096,
         "num_attention_heads": 32, "head_dim": 128, "rope_theta": 1000000.0,
         "rope_scaling": None}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"rope_theta": 10000.0}, "rope_theta 10000.0 where Qwen3 has 1000000"),
        ({"rope_theta": None}, "rope_theta absent (transformers' default 10000.0)"),
        ({"drop": "rope_theta"}, "rope_theta absent (transformers' default 10000.0)"),
        # transformers 5 writes the rope into rope_parameters: read there too
        ({"drop": "rope_theta", "rope_parameters": {"rope_theta": 500000.0}}, "500000.0"),
    ],
)
def test_a_qwen3_config_with_another_rope_theta_is_warned(change, expected):
    config = {**QWEN3, **{k: v for k, v in change.items() if k != "drop"}}
    config.pop(change.get("drop", ""), None)
    [found] = rope_findings(config)
    assert found.id == "rope_family" and found.severity == "warning"
    assert expected in found.message and "Qwen/Qwen3-8B" in found.message


def test_the_rope_of_another_release_or_a_documented_extension_is_not_warned():
    # Qwen3-2507: 262144 positions and rope_theta 5e6 -- another official release
    assert rope_findings({**QWEN3, "max_position_embeddings": 262144, "rope_theta": 5e6}) == []
    # Qwen's model card: YaRN x4 over 32768 for long context; rope_scaling is not pinned
    yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    assert rope_findings({**QWEN3, "rope_scaling": yarn}) == []
    in_parameters = {**QWEN3, "rope_parameters": {"rope_theta": 1e6}, "rope_theta": None}
    assert rope_findings(in_parameters) == []
    # a shape no official checkpoint has: not judged
    assert rope_findings({**QWEN3, "max_position_embeddings": 8192, "rope_theta": 1.0}) == []
    assert rope_findings({"model_type": "mistral", "rope_theta": 1.0}) == []


LLAMA31_8B = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
              "num_attention_heads": 32, "vocab_size": 128256,
              "max_position_embeddings": 131072, "rope_theta": 500000.0,
              "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                               "original_max_position_embeddings": 8192,
                               "rope_type": "llama3"}}  # fmt: skip


def test_llama_is_judged_by_the_checkpoint_its_shape_names():
    # the official config: no finding at all (llama3 scaling reaches 131072 with factor 8 over
    # 8192 -- not factor x original, so the reach check leaves llama3 alone)
    assert rope_findings(LLAMA31_8B) == []
    lost = rope_findings({**LLAMA31_8B, "rope_scaling": None})[0]  # llama3 scaling dropped
    assert "rope_type 'default' where Llama-3.1-8B has 'llama3'" in lost.message
    assert "factor None where Llama-3.1-8B has 8.0" in lost.message
    scaling = {**LLAMA31_8B["rope_scaling"], "factor": 32.0}  # Llama-3.2's factor
    wrong = rope_findings({**LLAMA31_8B, "rope_scaling": scaling})[0]
    assert "factor 32.0 where Llama-3.1-8B has 8.0" in wrong.message
    assert "factor to 8.0" in wrong.fix
    # a llama of another shape (Llama-2, a community model): no family value to hold it to
    assert rope_findings({**LLAMA31_8B, "hidden_size": 5120, "rope_theta": 10000.0}) == []


def test_glm_partial_rotary_factor():
    glm = {"model_type": "glm4_moe", "max_position_embeddings": 131072, "rope_theta": 1e6,
           "partial_rotary_factor": 0.5}  # fmt: skip
    assert rope_findings(glm) == []
    assert rope_findings({k: v for k, v in glm.items() if k != "partial_rotary_factor"}) == []
    [found] = rope_findings({**glm, "partial_rotary_factor": 1.0})
    assert "partial_rotary_factor 1.0 where GLM-4.5 has 0.5" in found.message


REAL_CONFIGS = Path(__file__).parents[2] / "data" / "configs"


def test_the_released_configs_on_record_agree_with_the_rope_facts():
    """The copies of released configs in tests/data/configs: every one is silent, and those an
    entry matches are really compared (a changed rope_theta is named)."""
    from adaptgate.inspect.lint import rope_facts

    judged = 0
    for path in sorted(REAL_CONFIGS.glob("*.json")):
        config = json.loads(path.read_text())
        assert rope_findings(config) == [], path.name
        matched = [
            f
            for f in rope_facts().checkpoints
            if f.model_type == config["model_type"]
            and all(config.get(k) == v for k, v in f.match.items())
        ]
        if matched:
            judged += 1
            [found] = rope_findings({**config, "rope_theta": 1234.0})
            assert "rope_theta 1234.0 where " in found.message, path.name
    assert judged >= 8  # Qwen3 (40960 and 2507), Qwen3-MoE (both), GLM-4.5


def test_every_rope_fact_names_its_source():
    from adaptgate.inspect.lint import rope_facts

    facts = rope_facts()
    assert facts.checkpoints and facts.default_rope_theta == 10000.0
    for fact in facts.checkpoints:
        assert fact.source.startswith("https://huggingface.co/") and fact.checked, fact.name
        assert fact.rope, fact.name


def test_a_conversion_that_changes_the_rope_is_an_error_naming_each_field(tiny_model, tmp_path):
    source = tiny_model(arch="glm4_moe", format="fp8_block")
    out = copy_of(source, tmp_path)
    config = json.loads((out / "config.json").read_text())
    # transformers 5 writes the same rope into rope_parameters: not a change
    rope = {"rope_theta": config.pop("rope_theta"), "rope_type": "default",
            "partial_rotary_factor": config.pop("partial_rotary_factor")}  # fmt: skip
    config.pop("rope_scaling")
    (out / "config.json").write_text(json.dumps({**config, "rope_parameters": rope}))
    assert compare_side_files(source, out) == []
    edit(out / "config.json", rope_parameters={**rope, "rope_theta": 10000.0},
         head_dim=config["head_dim"] * 2)  # fmt: skip
    found = {f.id: f for f in compare_side_files(source, out)}
    assert set(found) == {"rope_changed"}  # named once, not again as a raw config key
    message = found["rope_changed"].message
    assert found["rope_changed"].severity == "error"
    assert "rope_theta 1000000 -> 10000.0" in message
    assert f"head_dim {config['head_dim']} -> {config['head_dim'] * 2}" in message
    edit(out / "config.json", rope_parameters={**rope, "partial_rotary_factor": 1.0},
         head_dim=config["head_dim"])  # fmt: skip
    message = compare_side_files(source, out)[0].message
    assert "partial_rotary_factor 0.5 -> 1.0" in message and "rope_theta" not in message


def test_rope_changes_are_named_once_also_inside_a_text_config(tmp_path):
    text = {"model_type": "qwen3", "rope_parameters": {"rope_theta": 1e6, "rope_type": "default"}}
    source, out = tmp_path / "source", tmp_path / "out"
    for root, theta in ((source, 1e6), (out, 1e4)):
        root.mkdir()
        nested = {**text, "rope_parameters": {**text["rope_parameters"], "rope_theta": theta}}
        config = {**nested, "text_config": nested}
        (root / "config.json").write_text(json.dumps(config))
    [found] = compare_side_files(source, out)
    assert found.id == "rope_changed"
    assert "rope_theta 1000000.0 -> 10000.0; text_config.rope_theta" in found.message
    assert "rope_parameters." not in found.message  # the dict itself is not a nested config
