"""The bf16 demo models load and run in transformers 5, with per-expert tensors mapped."""

from __future__ import annotations

import pytest
import torch
from ckpt_helpers import load_all

from adaptgate.demo import ARCHS
from adaptgate.demo.archs import ARCH_REGISTRY

pytestmark = pytest.mark.slow

PROMPTS = ["The river was quiet in the morning", "北京的天气很好，我们去公园吧"]


def load(model_dir):
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    model, info = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.bfloat16, output_loading_info=True
    )
    return model.eval(), info


@pytest.mark.parametrize("arch", ARCHS)
def test_loads_runs_and_is_not_degenerate(tiny_model, arch):
    from transformers import AutoTokenizer

    d = tiny_model(arch, "bf16")
    model, info = load(d)
    assert not info["missing_keys"] and not info["mismatched_keys"]
    n_layers = model.config.num_hidden_layers
    # only GLM's MTP layer (model.layers.{num_hidden_layers}.*) is left out
    assert all(k.startswith(f"model.layers.{n_layers}.") for k in info["unexpected_keys"])
    assert bool(info["unexpected_keys"]) == (arch == "glm4_moe")

    stored = load_all(d)
    params = model.state_dict()
    arch_def = ARCH_REGISTRY.get(arch)
    if arch_def.moe:  # per-expert checkpoint tensors -> transformers 5's fused experts
        for e in (0, 5):
            prefix = f"model.layers.1.mlp.experts.{e}"
            gate_up = torch.cat([stored[f"{prefix}.gate_proj.weight"],
                                 stored[f"{prefix}.up_proj.weight"]])  # fmt: skip
            assert torch.equal(params["model.layers.1.mlp.experts.gate_up_proj"][e], gate_up)
            assert torch.equal(params["model.layers.1.mlp.experts.down_proj"][e],
                               stored[f"{prefix}.down_proj.weight"])  # fmt: skip
    assert torch.equal(params["model.embed_tokens.weight"], stored["model.embed_tokens.weight"])
    bias = "model.layers.1.self_attn.k_proj.bias"
    assert (bias in params) == arch_def.attention_bias  # Qwen2's and GLM's biases are used
    if arch_def.attention_bias:
        assert torch.equal(params[bias], stored[bias])

    tok = AutoTokenizer.from_pretrained(d)
    batch = tok(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**batch).logits.float()
    first = logits[0, : int(batch["attention_mask"][0].sum())]
    assert torch.isfinite(logits).all()
    assert len(set(first.argmax(-1).tolist())) >= 3  # the prediction changes along the prompt
    assert float((first[1:] - first[:-1]).abs().mean()) > 0.05
    assert float((logits[0, 0] - logits[1, 0]).abs().mean()) > 0.05  # and across prompts

    ids = tok("1 + 1 =", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=16, do_sample=False)
    new = out[0, ids["input_ids"].shape[1] :].tolist()
    assert len(set(new)) >= 3, new  # greedy decoding is not one repeated token


def test_tied_embeddings_load(tiny_model):
    d = tiny_model("qwen3", "bf16", tie_embeddings=True)
    assert "lm_head.weight" not in load_all(d)
    model, info = load(d)
    assert not info["missing_keys"]
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
