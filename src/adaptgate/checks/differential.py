"""Differential checks against the source checkpoint (``SmokeOptions.reference_model``).

A lost, stale or overridden chat template is one of the commonest adaptation faults, and the
model still answers through the wrong one: absolute checks pass. Here the same conversation is
rendered twice -- by the checkpoint's own tokenizer and chat template (transformers
``apply_chat_template``) and by the server (vLLM's ``/tokenize`` with ``messages``) -- and the
token ids must be identical. A thinking model's template is rendered with ``enable_thinking``
on and off.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from adaptgate.checks.base import Outcome, SmokeContext, check, evidence, http_failure

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# several turns, a system prompt, English and Chinese: what a template must get right
CONVERSATION: list[dict[str, str]] = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
    {"role": "user", "content": "用一句话介绍这座城市。"},
]


@lru_cache(maxsize=4)
def _tokenizer(model_dir: str) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir, local_files_only=True)


def render_locally(model_dir: str, kwargs: dict[str, Any]) -> list[int]:
    """The conversation's token ids as the checkpoint's own chat template renders them."""
    tok = _tokenizer(model_dir)
    out: Any = tok.apply_chat_template(
        CONVERSATION, add_generation_prompt=True, tokenize=True, **kwargs
    )
    ids = out if isinstance(out, list) else out["input_ids"]  # transformers 5: a BatchEncoding
    return [int(i) for i in ids]


def first_difference(a: list[int], b: list[int]) -> int | None:
    """The first position where the two id lists differ (a length difference counts)."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def describe(model_dir: str, ids: list[int], at: int) -> str:
    """The token at ``at`` as id and text (or 'end' past the last), for the reason line."""
    if at >= len(ids):
        return "end of prompt"
    text = _tokenizer(model_dir).decode([ids[at]])
    return f"id {ids[at]} {text!r}"


@check("chat_template", "the server renders a chat as the checkpoint's own template", "protocol")
def chat_template(ctx: SmokeContext) -> Outcome:
    source = ctx.options.reference_model
    if not source:
        return Outcome.skipped(
            "no source checkpoint to compare with (adaptgate smoke --reference-model DIR)"
        )
    variants: list[dict[str, Any]] = [{}]
    if ctx.thinking:
        variants += [{"enable_thinking": True}, {"enable_thinking": False}]
    compared, local = 0, []
    for kwargs in variants:
        body: dict[str, Any] = {
            "model": ctx.model,
            "messages": CONVERSATION,
            "add_generation_prompt": True,
        }
        if kwargs:
            body["chat_template_kwargs"] = kwargs
        reply = ctx.client.post("/tokenize", body)
        if reply.status == 404:
            return Outcome.skipped(
                "the server has no /tokenize (vLLM has one): its rendered prompt cannot be read",
                evidence(reply),
            )
        if fail := http_failure(reply, "POST /tokenize"):
            return fail
        try:
            local = render_locally(source, kwargs)
        except (OSError, ValueError) as exc:  # no tokenizer or template to compare with
            return Outcome.skipped(f"cannot render with {source}'s own template: {exc}")
        served = [int(t) for t in (reply.data or {}).get("tokens") or []]
        at = first_difference(local, served)
        how = f" with {kwargs}" if kwargs else ""
        ev = evidence(reply, checkpoint_tokens=len(local), server_tokens=len(served))
        if at is not None:
            return Outcome.failed(
                f"the served chat prompt{how} differs from the checkpoint's template at token "
                f"{at}: checkpoint {describe(source, local, at)}, server "
                f"{describe(source, served, at)} ({len(local)} vs {len(served)} tokens)",
                ev,
            )
        compared += 1
    return Outcome.passed(
        f"{len(local)} tokens identical to the checkpoint's own rendering"
        + (f" ({compared} variants: enable_thinking default/on/off)" if compared > 1 else "")
    )
