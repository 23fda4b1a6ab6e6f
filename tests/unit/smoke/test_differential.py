"""The differential checks against the source checkpoint.

chat_template: the server's rendering of a conversation against the checkpoint's own chat
template. A server with the checkpoint's template passes; one whose template differs -- even by
one token, with thinking on or off, or with a tool schema -- fails, naming the first differing
token on each side.

chat_answer: the server's greedy answer against the CPU reference's from the same prompt ids (the
check scores the answer teacher-forced; here the reference's answer is decoded greedily, token by
token, as the independent computation). A server that answers as the reference agrees on every
token; one that leaves it at step k is reported at k, with whether its token is in the
reference's top-k (outside it: FAIL)."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeConfig, FakeOpenAI

from adaptgate.smoke import CheckStatus, SmokeOptions, run_smoke
from adaptgate.smoke.differential import (
    ANSWER_TOKENS,
    ANSWER_TOP_K,
    CONVERSATION,
    first_difference,
    render_locally,
)

pytestmark = pytest.mark.slow  # builds a demo checkpoint (once per session)

Render = Callable[[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]] | None], list[int]]
Complete = Callable[[dict[str, Any]], dict[str, Any]]


class DifferentialFake(FakeOpenAI):
    """The smoke fake plus what the differential checks ask: ``/tokenize`` with ``messages``
    (and ``tools``) rendered by ``render``, and ``/v1/completions`` from token ids answered by
    ``complete``. Every POST body is kept in ``requests``."""

    def __init__(
        self, config: FakeConfig, render: Render | None = None, complete: Complete | None = None
    ) -> None:
        self.render, self.complete = render, complete
        self.requests: list[tuple[str, dict[str, Any]]] = []
        super().__init__(config)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        base: Any = super()._handler()
        fake = self

        class Handler(base):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw or b"{}")
                fake.requests.append((self.path, body))
                if self.path == "/tokenize" and "messages" in body and fake.render:
                    kwargs = body.get("chat_template_kwargs") or {}
                    ids = fake.render(body["messages"], kwargs, body.get("tools"))
                    self._send(200, {"count": len(ids), "tokens": ids})
                elif self.path == "/v1/completions" and fake.complete:
                    self._send(200, fake.complete(body))
                else:
                    self.rfile = io.BytesIO(raw)  # the smoke fake reads the body again
                    super().do_POST()

        return Handler


def renderer(
    model_dir: str,
    template: str | None = None,
    ignore_kwargs: bool = False,
    ignore_tools: bool = False,
) -> Render:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)

    def render(
        messages: list[dict[str, Any]], kwargs: dict[str, Any], tools: list[dict[str, Any]] | None
    ) -> list[int]:
        out = tok.apply_chat_template(
            messages,
            add_generation_prompt=True,
            tokenize=True,
            chat_template=template,
            tools=None if ignore_tools else tools,
            **({} if ignore_kwargs else kwargs),
        )
        return list(out if isinstance(out, list) else out["input_ids"])

    return render


def run_check(
    check_id: str,
    model: str | None,
    render: Render | None = None,
    complete: Complete | None = None,
    thinking: bool = False,
) -> tuple[Any, Any, DifferentialFake]:
    config = FakeConfig()
    with DifferentialFake(config, render, complete) as fake:
        options = SmokeOptions(
            url=fake.url,
            model=config.model,
            api_key_env=None,
            reference_model=model,
            thinking=thinking,
            only=[check_id],
        )
        result = run_smoke(options)
    check = result.by_id(check_id)
    assert check is not None
    return result, check, fake


def chat_template_check(render: Render | None, model: str | None, thinking: bool = False) -> Any:
    result, check, _ = run_check("chat_template", model, render, thinking=thinking)
    return result, check


def test_the_checkpoints_own_template_passes(tiny_model):
    model = str(tiny_model(arch="qwen3", format="bf16"))
    result, check = chat_template_check(renderer(model), model)
    assert check.status is CheckStatus.PASS, check.reason.text
    assert "identical to the checkpoint's own rendering" in check.reason.text
    assert result.verdict == "PASS"


def test_a_served_template_that_differs_fails_naming_the_first_differing_token(tiny_model):
    model = str(tiny_model(arch="qwen3", format="bf16"))
    from transformers import AutoTokenizer

    template = AutoTokenizer.from_pretrained(model).chat_template
    stale = template.replace("<|im_start|>system", "<|im_start|>developer")  # one word
    assert stale != template
    result, check = chat_template_check(renderer(model, stale), model)
    assert check.status is CheckStatus.FAIL and result.verdict == "FAIL" and result.exit_code == 1
    assert "differs from the checkpoint's template at token 1" in check.reason.text, (
        check.reason.text
    )
    assert "checkpoint id " in check.reason.text and "server id " in check.reason.text
    assert check.evidence and check.evidence[0].details["checkpoint_tokens"] > 0


def test_a_thinking_template_is_compared_with_thinking_on_and_off(tiny_model):
    model = str(tiny_model(arch="qwen3", format="bf16"))
    _, check = chat_template_check(renderer(model), model, thinking=True)
    assert check.status is CheckStatus.PASS, check.reason.text
    assert "4 variants: enable_thinking default/on/off/tools" in check.reason.text
    # a server that drops chat_template_kwargs renders thinking on whatever the client asked
    deaf = renderer(model, ignore_kwargs=True)
    _, check = chat_template_check(deaf, model, thinking=True)
    assert check.status is CheckStatus.FAIL and "'enable_thinking': False" in check.reason.text


def test_without_a_source_or_a_chat_tokenizer_it_is_skipped_with_the_reason(tiny_model):
    model = str(tiny_model(arch="qwen3", format="bf16"))
    _, check = chat_template_check(renderer(model), None)
    assert check.status is CheckStatus.SKIPPED and "--reference-model" in check.reason.text
    _, check = chat_template_check(None, model)  # the smoke fake: no chat /tokenize (404)
    assert check.status is CheckStatus.SKIPPED and "/tokenize" in check.reason.text


def test_first_difference():
    assert first_difference([1, 2, 3], [1, 2, 3]) is None
    assert first_difference([1, 2, 3], [1, 5, 3]) == 1
    assert first_difference([1, 2], [1, 2, 3]) == 2  # a longer rendering differs at its end
    assert first_difference([], []) is None
    assert CONVERSATION[0]["role"] == "system" and len(CONVERSATION) >= 4


# -- tool schemas ------------------------------------------------------------------------------


def test_a_template_that_renders_tools_is_compared_with_a_tool_schema(tiny_model):
    model = str(tiny_model(arch="qwen3", format="bf16"))  # the demo template is Qwen3's
    _, check, fake = run_check("chat_template", model, renderer(model))
    assert check.status is CheckStatus.PASS, check.reason.text
    assert "2 variants: default/tools" in check.reason.text
    sent = [body for path, body in fake.requests if path == "/tokenize"]
    assert [b.get("tools") is not None for b in sent] == [False, True]
    assert sent[1]["tools"][0]["function"]["name"] == "get_weather"
    # a server that renders the chat without the tool schema it was given
    result, check, _ = run_check("chat_template", model, renderer(model, ignore_tools=True))
    assert check.status is CheckStatus.FAIL and result.verdict == "FAIL"
    assert "the served chat prompt with tools=[get_weather] differs" in check.reason.text
    assert "checkpoint id " in check.reason.text and "server id " in check.reason.text


def test_a_template_without_tools_is_not_given_any(smollm2_model):
    model = str(smollm2_model(format="bf16"))  # the real SmolLM2 template takes no tools
    assert render_locally(model, {}) == render_locally(model, {}, [{"type": "function",
        "function": {"name": "f", "parameters": {"type": "object"}}}])  # fmt: skip
    _, check, fake = run_check("chat_template", model, renderer(model))
    assert check.status is CheckStatus.PASS, check.reason.text
    assert "the template renders no tool schema" in check.reason.text
    assert all("tools" not in body for _, body in fake.requests)


# -- the greedy answer against the CPU reference -------------------------------------------------


class Reference:
    """The reference's own greedy answer to the rendered chat, computed here independently."""

    def __init__(self, model: str) -> None:
        from adaptgate.reference.prompts import EncodedPrompt, Prompt
        from adaptgate.reference.session import ReferenceSession

        self.model = model
        self.prompt = render_locally(model, {})
        session = self.session = ReferenceSession(model, dtype="float32")
        encoded = EncodedPrompt(
            prompt=Prompt(id="chat", messages=CONVERSATION), rendered="", token_ids=self.prompt
        )
        [gen], _ = session.run([encoded], max_new_tokens=ANSWER_TOKENS, top_k=ANSWER_TOP_K)
        self.tokens = list(gen.tokens)
        self.topk = [[int(i) for i in t.tolist()] for t in gen.topk_ids]
        self.topk_logprobs = [[float(v) for v in t.tolist()] for t in gen.topk_logprobs]
        self.least_likely = [int(logits.argmin()) for logits in gen.step_logits]

    def server(self, tokens: list[int], as_ids: bool = True, finish: str = "length") -> Complete:
        """A /v1/completions that answers ``tokens`` (with the reference's top-k as its own)."""

        def complete(body: dict[str, Any]) -> dict[str, Any]:
            assert body["prompt"] == self.prompt and body["temperature"] == 0
            assert body["return_tokens_as_token_ids"] is True
            n = body["max_tokens"]
            top = [
                {f"token_id:{i}": lp for i, lp in zip(ids, lps, strict=True)}
                for ids, lps in zip(self.topk, self.topk_logprobs, strict=True)
            ][:n]
            names = [f"token_id:{t}" if as_ids else f"t{t}" for t in tokens[:n]]
            logprobs = {"tokens": names, "token_logprobs": [0.0] * len(names), "top_logprobs": top}
            choice = {"index": 0, "text": "x", "finish_reason": finish, "logprobs": logprobs}
            return {"id": "x", "choices": [choice], "usage": {}}

        return complete


@pytest.fixture(scope="module")
def reference(tiny_model: Callable[..., Path]) -> Reference:
    return Reference(str(tiny_model(arch="qwen3", format="bf16")))


def chat_answer(model: str | None, complete: Complete | None) -> Any:
    result, check, _ = run_check("chat_answer", model, complete=complete)
    assert check.category == "quality"
    return result, check


def test_a_server_that_answers_as_the_reference_agrees_on_every_token(reference):
    assert len(reference.tokens) == ANSWER_TOKENS  # a random model runs to the limit
    result, check = chat_answer(reference.model, reference.server(reference.tokens))
    assert check.status is CheckStatus.PASS, check.reason.text
    assert f"all {ANSWER_TOKENS} greedy tokens agree" in check.reason.text
    details = check.evidence[0].details
    assert details["agreed_tokens"] == ANSWER_TOKENS and details["first_divergence"] is None
    assert details["prompt_tokens"] == len(reference.prompt)
    assert result.quality_verdict == "PASS" and result.verdict == "PASS"


def test_a_near_tie_divergence_is_reported_at_its_step(reference):
    k = 5
    runner_up = reference.topk[k][1]  # the reference's #2 at step k
    tokens = [*reference.tokens[:k], runner_up, *reference.tokens[k + 1 :]]
    _, check = chat_answer(reference.model, reference.server(tokens))
    assert check.status is CheckStatus.PASS, check.reason.text  # reported, not a failure
    assert f"the first {k} of {ANSWER_TOKENS} greedy tokens agree" in check.reason.text
    assert f"at token {k} the server chose id {runner_up} " in check.reason.text
    assert f"the reference id {reference.tokens[k]} " in check.reason.text
    gap = reference.topk_logprobs[k][0] - reference.topk_logprobs[k][1]
    assert f"the reference's #2, {gap:.2f} nats below its choice" in check.reason.text
    details = check.evidence[0].details
    assert details["first_divergence"] == k and details["agreed_tokens"] == k
    assert details["server_token_reference_rank"] == 2
    assert details["reference_token_in_server_topk"] is True


def test_a_token_outside_the_references_top_k_fails_the_check_not_the_gate(reference):
    k = 3
    outsider = reference.least_likely[k]
    assert outsider not in reference.topk[k]
    tokens = [*reference.tokens[:k], outsider, *reference.tokens[k + 1 :]]
    result, check = chat_answer(reference.model, reference.server(tokens))
    assert check.status is CheckStatus.FAIL
    assert f"at token {k} the server chose id {outsider} " in check.reason.text
    assert f"outside the reference's top-{ANSWER_TOP_K}" in check.reason.text
    assert check.evidence[0].details["server_token_reference_rank"] is None
    assert result.quality_verdict == "FAIL"
    assert result.verdict == "PASS"  # only the rendered prompt decides the smoke gate


def test_an_answer_that_stops_early_is_reported_where(reference):
    # stopped on a stop token the reference does not stop on: not an end of turn
    _, check = chat_answer(reference.model, reference.server(reference.tokens[:-2], finish="stop"))
    assert check.status is CheckStatus.PASS, check.reason.text
    assert (
        f"the first {ANSWER_TOKENS - 2} of {ANSWER_TOKENS} greedy tokens agree" in check.reason.text
    )
    assert "the server's answer ends there" in check.reason.text


def test_the_answer_check_is_skipped_with_the_reason(reference, tmp_path, monkeypatch):
    agree = reference.server(reference.tokens)
    _, check = chat_answer(None, agree)
    assert check.status is CheckStatus.SKIPPED and "--reference-model" in check.reason.text
    # the server answers with token texts, not ids
    _, check = chat_answer(reference.model, reference.server(reference.tokens, as_ids=False))
    assert check.status is CheckStatus.SKIPPED and "token ids" in check.reason.text
    # a source whose weights the reference cannot read (its template still renders)
    broken = Path(shutil.copytree(reference.model, tmp_path / "broken"))
    for weights in broken.glob("*.safetensors*"):
        weights.unlink()
    _, check = chat_answer(str(broken), agree)
    assert check.status is CheckStatus.SKIPPED
    assert "the CPU reference cannot load" in check.reason.text
    # too big for host memory: the reference would stream the model from disk
    monkeypatch.setattr("adaptgate.reference.session.should_stream", lambda *a: True)
    _, check = chat_answer(reference.model, agree)
    assert check.status is CheckStatus.SKIPPED and "stream the whole model" in check.reason.text


def test_an_answer_that_ends_at_the_end_of_turn_agrees_whether_or_not_it_is_listed(
    smollm2_model, monkeypatch
):
    ref = Reference(str(smollm2_model(format="bf16")))  # the real model answers and stops
    # one load of the real model for the two smoke runs below (each run loads its own)
    monkeypatch.setattr("adaptgate.reference.session.ReferenceSession", lambda *a, **k: ref.session)
    assert len(ref.tokens) < ANSWER_TOKENS, "the real SmolLM2 ends its answer with <|im_end|>"
    _, check = chat_answer(ref.model, ref.server(ref.tokens, finish="stop"))
    assert check.status is CheckStatus.PASS and "all " in check.reason.text, check.reason.text
    # a server that stops on the end token without returning it (the text never shows it)
    _, check = chat_answer(ref.model, ref.server(ref.tokens[:-1], finish="stop"))
    assert check.status is CheckStatus.PASS and "all " in check.reason.text, check.reason.text
    # a server that goes on past the end token (e.g. ignoring it): the reference ended there
    more = [*ref.tokens, *ref.tokens[:2]]
    _, check = chat_answer(ref.model, ref.server(more, finish="length"))
    assert check.status is CheckStatus.PASS, check.reason.text
    assert (
        f"the first {len(ref.tokens)} of {ANSWER_TOKENS} greedy tokens agree" in check.reason.text
    )
    assert "the reference's answer ends there" in check.reason.text
