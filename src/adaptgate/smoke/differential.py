"""Differential checks against the source checkpoint (``SmokeOptions.reference_model``).

``chat_template`` (protocol): a lost, stale or overridden chat template is one of the commonest
adaptation faults, and the model still answers through the wrong one: absolute checks pass.
Here the same conversation is rendered twice -- by the checkpoint's own tokenizer and chat
template (transformers ``apply_chat_template``) and by the server (vLLM's ``/tokenize`` with
``messages``) -- and the token ids must be identical. A thinking model's template is rendered
with ``enable_thinking`` on and off; a template that renders tool schemas (it changes when
given ``tools``, as Qwen3's does; SmolLM2's does not) is rendered with one tool too.

``chat_answer`` (quality): the server's greedy answer to that rendered prompt against the CPU
reference's (:mod:`adaptgate.reference`, float32), token by token. See its docstring.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from adaptgate.client import choice_of, token_ids, top_ids
from adaptgate.errors import AdaptgateError
from adaptgate.messages import Message, message
from adaptgate.smoke.base import Outcome, SmokeContext, check, evidence, http_failure
from adaptgate.smoke.quality import WEATHER_TOOL

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from adaptgate.reference.prompts import EncodedPrompt
    from adaptgate.reference.session import Generation, ReferenceSession

# several turns, a system prompt, English and Chinese: what a template must get right
CONVERSATION: list[dict[str, str]] = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
    {"role": "user", "content": "用一句话介绍这座城市。"},
]
# One function with JSON-schema parameters. vLLM renders what its request model dumps
# (``ChatCompletionToolsParam.model_dump()``: type, function{name, description, parameters},
# unset fields dropped), so this schema, written in that key order, renders the same on both
# sides of a faithful server.
TOOLS: list[dict[str, Any]] = [WEATHER_TOOL]
ANSWER_TOKENS = 32  # greedy tokens compared with the reference
ANSWER_TOP_K = 20  # the reference's top-k kept per step (vLLM serves up to 20 logprobs)


@lru_cache(maxsize=4)
def _tokenizer(model_dir: str) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir, local_files_only=True)


def render_locally(
    model_dir: str, kwargs: dict[str, Any], tools: list[dict[str, Any]] | None = None
) -> list[int]:
    """The conversation's token ids as the checkpoint's own chat template renders them."""
    tok = _tokenizer(model_dir)
    extra: dict[str, Any] = {"tools": tools} if tools else {}
    out: Any = tok.apply_chat_template(
        CONVERSATION, add_generation_prompt=True, tokenize=True, **kwargs, **extra
    )
    ids = out if isinstance(out, list) else out["input_ids"]  # transformers 5: a BatchEncoding
    return [int(i) for i in ids]


def first_difference(a: list[int], b: list[int]) -> int | None:
    """The first position where the two id lists differ (a length difference counts)."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def describe(model_dir: str, ids: list[int], at: int) -> str | Message:
    """The token at ``at`` as id and text (or 'end' past the last), for the reason line."""
    if at >= len(ids):
        return message("smoke.end_of_prompt")
    text = _tokenizer(model_dir).decode([ids[at]])
    return f"id {ids[at]} {text!r}"


def _variant_name(kwargs: dict[str, Any], tools: list[dict[str, Any]] | None) -> str:
    if tools:
        return f"tools=[{', '.join(t['function']['name'] for t in tools)}]"
    return str(kwargs) if kwargs else ""


def _tools_note(source: str, plain: list[int]) -> dict[str, Any] | None:
    """None when the template renders a tool schema (its rendering changes with ``tools``),
    else why no tools variant is compared: a message id and its parameters but the reason it
    follows (``base``)."""
    from jinja2 import TemplateError

    try:
        with_tools = render_locally(source, {}, TOOLS)
    except (ValueError, TypeError, TemplateError) as exc:
        error = " ".join(str(exc).split())[:120]
        return {"id": "smoke.template_refuses_tools", "error": error}
    return None if with_tools != plain else {"id": "smoke.template_no_tool_schema"}


@check("chat_template", "protocol")
def chat_template(ctx: SmokeContext) -> Outcome:
    source = ctx.options.reference_model
    if not source:
        return Outcome.skipped(message("smoke.no_reference_model"))
    variants: list[tuple[dict[str, Any], list[dict[str, Any]] | None]] = [({}, None)]
    labels = ["default"]
    if ctx.thinking:
        variants += [({"enable_thinking": True}, None), ({"enable_thinking": False}, None)]
        labels = ["enable_thinking default", "on", "off"]
    compared, local = 0, []
    tools_note: dict[str, Any] | None = None
    for kwargs, tools in variants:
        body: dict[str, Any] = {
            "model": ctx.model,
            "messages": CONVERSATION,
            "add_generation_prompt": True,
        }
        if kwargs:
            body["chat_template_kwargs"] = kwargs
        if tools:
            body["tools"] = tools
        reply = ctx.client.post("/tokenize", body)
        if reply.status == 404:
            return Outcome.skipped(message("smoke.no_tokenize"), evidence(reply))
        if fail := http_failure(reply, "POST /tokenize"):
            return fail
        try:
            local = render_locally(source, kwargs, tools)
        except (OSError, ValueError) as exc:  # no tokenizer or template to compare with
            return Outcome.skipped(message("smoke.cannot_render", source=source, error=str(exc)))
        if not compared:  # a template that renders tool schemas is compared with one too
            tools_note = _tools_note(source, local)
            if not tools_note:  # this loop reaches it last
                variants.append(({}, TOOLS))
                labels.append("tools")
        served = [int(t) for t in (reply.data or {}).get("tokens") or []]
        at = first_difference(local, served)
        name = _variant_name(kwargs, tools)
        ev = evidence(reply, checkpoint_tokens=len(local), server_tokens=len(served))
        if at is not None:
            where = {
                "at": at,
                "local": describe(source, local, at),
                "served": describe(source, served, at),
                "local_n": len(local),
                "served_n": len(served),
            }
            if name:
                return Outcome.failed(
                    message("smoke.template_differs_with", variant=name, **where), ev
                )
            return Outcome.failed(message("smoke.template_differs", **where), ev)
        compared += 1
    reason = message("smoke.template_identical", tokens=len(local))
    if compared > 1:
        reason = message(
            "smoke.template_variants", base=reason, compared=compared, labels="/".join(labels)
        )
    if tools_note is not None:
        note = dict(tools_note)
        reason = message(note.pop("id"), base=reason, **note)
    return Outcome.passed(reason)


def _reference(ctx: SmokeContext, source: str) -> ReferenceSession | Message:
    """The CPU reference of ``source``, loaded once per smoke run (``ctx.cache``), or why not."""
    key = f"reference:{source}"
    if key not in ctx.cache:
        from adaptgate.reference.memory import FULL_LOAD_SHARE, model_bytes
        from adaptgate.reference.session import ReferenceSession

        try:
            session = ReferenceSession(source, dtype="float32")
        except (AdaptgateError, OSError, ValueError, KeyError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            ctx.cache[key] = message("smoke.reference_cannot_load", source=source, error=reason)
        else:
            if session.stream:  # a smoke check does not stream the model from disk
                size = model_bytes(session.weights, 4) / 2**30
                ctx.cache[key] = message(
                    "smoke.reference_too_big",
                    source=source,
                    size=f"{size:.1f}",
                    share=f"{FULL_LOAD_SHARE:.0%}",
                )
            else:
                ctx.cache[key] = session
    return ctx.cache[key]


def _token(tok: PreTrainedTokenizerBase, token_id: int) -> str:
    return f"id {token_id} {tok.decode([token_id])!r}"


def _along(
    reference: ReferenceSession,
    encoded: EncodedPrompt,
    served: list[int],
    count: int,
    finish: object,
) -> tuple[list[int], int | None, Generation]:
    """The served answer scored under the reference in one pass (plus one position: the
    reference's token after the whole answer). Returns the reference's greedy answer as far as
    it is the same (to the first divergence, its own token there included), the index of that
    divergence (None: the answers agree), and the scores. Up to the first divergence the
    contexts are the same, so this is what greedy decoding gives, without a pass per token."""
    [gen], _stats = reference.score([encoded], [[*served, 0]], top_k=ANSWER_TOP_K)
    ahead, eos = gen.argmax, set(reference.eos_token_ids)
    at = first_difference(ahead[: len(served)], served)
    end = next((i for i in range(len(served) if at is None else at) if ahead[i] in eos), None)
    if end is not None:  # both emitted the reference's end token: its answer ends there
        return ahead[: end + 1], None if end == len(served) - 1 else end + 1, gen
    if at is not None:
        return ahead[: at + 1], at, gen
    if len(served) < count and not (finish == "stop" and ahead[len(served)] in eos):
        return ahead[: len(served) + 1], len(served), gen  # the server stopped, not the reference
    return ahead[: len(served)], None, gen  # (a stop on the end token the server did not list)


@check("chat_answer", "quality")
def chat_answer(ctx: SmokeContext) -> Outcome:
    """The rendered chat prompt (the checkpoint's own template, token ids) goes to the server
    (``/v1/completions``, greedy, top-20 logprobs, vLLM's ``return_tokens_as_token_ids``); the
    CPU reference (float32, the same ids) scores that answer teacher-forced in one pass, which up
    to the first divergence is its own greedy answer: agreement up to the first divergence, the
    first differing token on each side, and whether the server's token is within the
    reference's top-20.

    A quality check, reported beside the verdict: it compares weights and arithmetic, not the
    protocol. A correct bf16 (or quantized) server legitimately leaves the float32 reference
    after some tokens at a near-tie -- the server's token is then the reference's #2 or #3. Only
    a first differing token outside the reference's top-20 FAILs it: with the same context the
    server chose a token the reference's model all but excludes (scaled or corrupted weights, a
    wrong rope, a broken kernel), which no rounding explains. SKIPPED without a source, when the
    reference cannot load it (or it is too big to decode from host memory), or when the server
    does not return token ids."""
    source = ctx.options.reference_model
    if not source:
        return Outcome.skipped(message("smoke.no_reference_model"))
    try:
        prompt = render_locally(source, {})
    except (OSError, ValueError) as exc:
        return Outcome.skipped(message("smoke.cannot_render", source=source, error=str(exc)))
    count = ANSWER_TOKENS
    if ctx.max_model_len:
        count = min(count, ctx.max_model_len - len(prompt))
    if count < 1:
        return Outcome.skipped(
            message("smoke.no_room", tokens=len(prompt), limit=ctx.max_model_len)
        )
    body = {
        "model": ctx.model,
        "prompt": prompt,
        "max_tokens": count,
        "temperature": 0,
        "logprobs": ANSWER_TOP_K,
        "return_tokens_as_token_ids": True,
    }
    reply = ctx.client.post("/v1/completions", body)
    if reply.status == 400:  # token-id prompts, logprobs or the vLLM extension refused
        return Outcome.skipped(message("smoke.token_ids_refused"), evidence(reply))
    if fail := http_failure(reply, "POST /v1/completions"):
        return fail
    choice = choice_of(reply)
    logprobs = choice.get("logprobs") or {}
    served = token_ids([str(t) for t in logprobs.get("tokens") or []])
    if served is None:
        return Outcome.skipped(message("smoke.no_token_ids"), evidence(reply))
    reference = _reference(ctx, source)
    if isinstance(reference, Message):
        return Outcome.skipped(reference, evidence(reply))
    from adaptgate.reference.prompts import EncodedPrompt, Prompt

    tok = reference.tokenizer
    encoded = EncodedPrompt(
        prompt=Prompt(id="chat", messages=CONVERSATION),
        rendered=tok.decode(prompt),
        token_ids=prompt,
    )
    ref, at, gen = _along(reference, encoded, served, count, choice.get("finish_reason"))
    details: dict[str, Any] = {
        "prompt_tokens": len(prompt),
        "reference": f"{source} float32 ({reference.mode} load), teacher-forced on the answer",
        "reference_tokens": len(ref),
        "server_tokens": len(served),
        "agreed_tokens": len(ref) if at is None else at,
        "first_divergence": at,
        "reference_text": tok.decode(ref),
        "server_text": choice.get("text") if isinstance(choice.get("text"), str) else None,
    }
    if at is None:
        return Outcome.passed(
            message("smoke.answer_agrees", tokens=len(ref), prompt=len(prompt)),
            evidence(reply, **details),
        )
    agreed = {"at": at, "tokens": count}
    if at >= len(ref) or at >= len(served):
        ended = "reference" if at >= len(ref) else "server"
        extra = served[at] if at < len(served) else ref[at]
        return Outcome.passed(
            message(
                f"smoke.{ended}_ends_first",
                **agreed,
                token=_token(tok, extra),
                finish=repr(choice.get("finish_reason")),
            ),
            evidence(reply, **details),
        )
    top = [int(i) for i in gen.topk_ids[at].tolist()]
    rank = top.index(served[at]) + 1 if served[at] in top else None
    server_top = logprobs.get("top_logprobs") or []
    server_ids = top_ids(server_top[at]) if at < len(server_top) and server_top[at] else None
    details.update(
        reference_token=_token(tok, ref[at]),
        server_token=_token(tok, served[at]),
        server_token_reference_rank=rank,
        reference_token_in_server_topk=None if server_ids is None else ref[at] in server_ids,
    )
    where = {
        **agreed,
        "served": _token(tok, served[at]),
        "reference": _token(tok, ref[at]),
        "k": len(top),
    }
    if rank is None:
        return Outcome.failed(
            message("smoke.answer_outside_topk", **where), evidence(reply, **details)
        )
    gap = float(gen.topk_logprobs[at][0] - gen.topk_logprobs[at][rank - 1])
    details["reference_logprob_gap"] = round(gap, 4)
    return Outcome.passed(
        message("smoke.answer_within_topk", **where, rank=rank, gap=f"{gap:.2f}"),
        evidence(reply, **details),
    )
