"""The chat_template check: the server's rendering of a conversation against the checkpoint's own
chat template. A server with the checkpoint's template passes; one whose template differs -- even
by one token -- fails, naming the first differing token on each side."""

from __future__ import annotations

from typing import Any

import pytest
from fake_openai import FakeConfig, FakeOpenAI

from adaptgate.checks import CheckStatus, SmokeOptions, run_smoke
from adaptgate.checks.differential import CONVERSATION, first_difference

pytestmark = pytest.mark.slow  # builds a demo checkpoint (once per session)


def renderer(model_dir: str, template: str | None = None, ignore_kwargs: bool = False) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)

    def render(messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> list[int]:
        out = tok.apply_chat_template(
            messages,
            add_generation_prompt=True,
            tokenize=True,
            chat_template=template,
            **({} if ignore_kwargs else kwargs),
        )
        return list(out if isinstance(out, list) else out["input_ids"])

    return render


def chat_template_check(config: FakeConfig, model: str | None, thinking: bool = False) -> Any:
    with FakeOpenAI(config) as fake:
        options = SmokeOptions(
            url=fake.url,
            model=config.model,
            api_key_env=None,
            reference_model=model,
            thinking=thinking,
            only=["chat_template"],
        )
        result = run_smoke(options)
    check = result.by_id("chat_template")
    assert check is not None
    return result, check


def test_the_checkpoints_own_template_passes(tiny_model):
    model = str(tiny_model(arch="qwen3", format="bf16"))
    result, check = chat_template_check(FakeConfig(render_chat=renderer(model)), model)
    assert check.status is CheckStatus.PASS, check.reason
    assert "identical to the checkpoint's own rendering" in check.reason
    assert result.verdict == "PASS"


def test_a_served_template_that_differs_fails_naming_the_first_differing_token(tiny_model):
    model = str(tiny_model(arch="qwen3", format="bf16"))
    from transformers import AutoTokenizer

    template = AutoTokenizer.from_pretrained(model).chat_template
    stale = template.replace("<|im_start|>system", "<|im_start|>developer")  # one word
    assert stale != template
    result, check = chat_template_check(FakeConfig(render_chat=renderer(model, stale)), model)
    assert check.status is CheckStatus.FAIL and result.verdict == "FAIL" and result.exit_code == 1
    assert "differs from the checkpoint's template at token 1" in check.reason, check.reason
    assert "checkpoint id " in check.reason and "server id " in check.reason
    assert check.evidence and check.evidence[0].details["checkpoint_tokens"] > 0


def test_a_thinking_template_is_compared_with_thinking_on_and_off(tiny_model):
    model = str(tiny_model(arch="qwen3", format="bf16"))
    ok = FakeConfig(render_chat=renderer(model))
    _, check = chat_template_check(ok, model, thinking=True)
    assert check.status is CheckStatus.PASS and "3 variants" in check.reason
    # a server that drops chat_template_kwargs renders thinking on whatever the client asked
    deaf = FakeConfig(render_chat=renderer(model, ignore_kwargs=True))
    _, check = chat_template_check(deaf, model, thinking=True)
    assert check.status is CheckStatus.FAIL and "'enable_thinking': False" in check.reason


def test_without_a_source_or_a_chat_tokenizer_it_is_skipped_with_the_reason(tiny_model):
    model = str(tiny_model(arch="qwen3", format="bf16"))
    _, check = chat_template_check(FakeConfig(render_chat=renderer(model)), None)
    assert check.status is CheckStatus.SKIPPED and "--reference-model" in check.reason
    _, check = chat_template_check(FakeConfig(), model)
    assert check.status is CheckStatus.SKIPPED and "/tokenize" in check.reason


def test_first_difference():
    assert first_difference([1, 2, 3], [1, 2, 3]) is None
    assert first_difference([1, 2, 3], [1, 5, 3]) == 1
    assert first_difference([1, 2], [1, 2, 3]) == 2  # a longer rendering differs at its end
    assert first_difference([], []) is None
    assert CONVERSATION[0]["role"] == "system" and len(CONVERSATION) >= 4
