"""Model-quality checks: answers a working model gets right and a random one does not. They
are reported apart from the protocol checks and never decide the smoke gate's verdict."""

from __future__ import annotations

import json
import re
from typing import Any

from adaptgate.client import choice_of, message_of, reasoning_of
from adaptgate.messages import Message, joined, message
from adaptgate.smoke.base import Outcome, SmokeContext, check, evidence, http_failure
from adaptgate.smoke.models import excerpt

CJK_MIN_RATIO = 0.6
CHINESE_PROMPT = "请用中文简单介绍一下人工智能的基本概念。"
ARITHMETIC_PROMPT = (
    "If a train travels 120 km in 2 hours, what is its average speed in km/h? "
    "Answer with the number."
)
THINKING_PROMPT = "Which is larger, 9.11 or 9.8? Think it through, then answer."
_THINK = re.compile(r"<think>(?P<r>.*?)</think>(?P<a>.*)", re.DOTALL)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LETTER = re.compile(r"[^\W\d_]")

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "city name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def split_answer(message: dict[str, Any]) -> tuple[str, str]:
    """(reasoning, final answer): the reasoning field, or a <think> block in the content."""
    content = message.get("content") or ""
    reasoning = reasoning_of(message)
    if not reasoning and (m := _THINK.search(content)):
        return m["r"].strip(), m["a"].strip()
    if not reasoning and "</think>" in content:  # the template opened <think> in the prompt
        head, _, tail = content.partition("</think>")
        return head.strip(), tail.strip()
    return reasoning, content.strip()


def cjk_ratio(text: str) -> float:
    letters = _LETTER.findall(text)
    if not letters:
        return 0.0
    return len(_CJK.findall(text)) / len(letters)


def _answer(ctx: SmokeContext, prompt: str, **extra: Any) -> tuple[Any, str, str]:
    body = ctx.chat_body(prompt, max_tokens=ctx.options.quality_max_tokens, **extra)
    reply = ctx.client.post("/v1/chat/completions", body)
    reasoning, answer = split_answer(message_of(reply))
    return reply, reasoning, answer


def _no_answer(reply: Any, reasoning: str) -> Outcome:
    finish = choice_of(reply).get("finish_reason")
    which = "smoke.no_answer"
    if reasoning:
        which += "_budget" if finish == "length" else "_in_reasoning"
    return Outcome.failed(
        message(which, finish=finish), evidence(reply, reasoning=excerpt(reasoning, 200))
    )


@check("chinese", "quality")
def chinese(ctx: SmokeContext) -> Outcome:
    reply, reasoning, answer = _answer(ctx, CHINESE_PROMPT)
    if fail := http_failure(reply, "POST /v1/chat/completions"):
        return fail
    if not answer:
        return _no_answer(reply, reasoning)
    ratio = cjk_ratio(answer)
    ev = evidence(reply, answer=excerpt(answer, 200), cjk_ratio=round(ratio, 3))
    if ratio < CJK_MIN_RATIO:
        return Outcome.failed(message("smoke.cjk_low", share=f"{ratio:.0%}"), ev)
    return Outcome.passed(message("smoke.cjk", share=f"{ratio:.0%}"), ev)


@check("arithmetic", "quality")
def arithmetic(ctx: SmokeContext) -> Outcome:
    reply, reasoning, answer = _answer(ctx, ARITHMETIC_PROMPT)
    if fail := http_failure(reply, "POST /v1/chat/completions"):
        return fail
    if not answer:
        return _no_answer(reply, reasoning)
    numbers = re.findall(r"-?\d+(?:\.\d+)?", answer.replace(",", ""))
    ev = evidence(reply, answer=excerpt(answer, 200), numbers=numbers[:10])
    if any(float(n) == 60 for n in numbers):
        return Outcome.passed(message("smoke.sixty"), ev)
    return Outcome.failed(message("smoke.no_sixty", numbers=str(numbers[:5])), ev)


@check("thinking", "quality")
def thinking(ctx: SmokeContext) -> Outcome:
    if ctx.thinking is False:
        return Outcome.skipped(message("smoke.not_thinking"))
    reply, reasoning, answer = _answer(ctx, THINKING_PROMPT)
    if fail := http_failure(reply, "POST /v1/chat/completions"):
        return fail
    if ctx.thinking is None and not reasoning:
        return Outcome.skipped(message("smoke.thinking_undeclared"))
    ev = evidence(reply, reasoning=excerpt(reasoning, 200), answer=excerpt(answer, 200))
    if not reasoning:
        return Outcome.failed(message("smoke.no_reasoning"), ev)
    if not answer:
        return _no_answer(reply, reasoning)
    return Outcome.passed(
        message("smoke.reasoned", reasoning=len(reasoning), answer=len(answer)), ev
    )


def schema_problems(args: Any, schema: dict[str, Any]) -> list[Message]:
    """A small JSON-schema subset: object, properties with type string/number/integer/
    boolean, enum, required, additionalProperties false."""
    if not isinstance(args, dict):
        return [message("smoke.arguments_not_object", type=type(args).__name__)]
    props: dict[str, Any] = schema.get("properties", {})
    problems = [
        message("smoke.missing_required", key=repr(k))
        for k in schema.get("required", [])
        if k not in args
    ]
    types: dict[str, type | tuple[type, ...]] = {
        "string": str,
        "number": (int, float),
        "integer": int,
        "boolean": bool,
    }
    for key, value in args.items():
        spec = props.get(key)
        if spec is None:
            if schema.get("additionalProperties") is False:
                problems.append(message("smoke.unexpected_property", key=repr(key)))
            continue
        want = types.get(spec.get("type", ""))
        if want is not None and not isinstance(value, want):
            problems.append(
                message(
                    "smoke.wrong_type", key=repr(key), got=type(value).__name__, want=spec["type"]
                )
            )
        if "enum" in spec and value not in spec["enum"]:
            problems.append(
                message(
                    "smoke.not_in_enum", key=repr(key), value=repr(value), allowed=str(spec["enum"])
                )
            )
    return problems


@check("tool_call", "quality")
def tool_call(ctx: SmokeContext) -> Outcome:
    if not ctx.options.tools:
        return Outcome.skipped(message("smoke.tools_disabled"))
    reply, _, _ = _answer(
        ctx,
        "What is the weather in Paris right now? Use the get_weather tool.",
        tools=[WEATHER_TOOL],
        tool_choice="auto",
    )
    if fail := http_failure(reply, "POST /v1/chat/completions tools=[get_weather]"):
        return fail
    calls = message_of(reply).get("tool_calls") or []
    ev = evidence(reply, tool_calls=excerpt(json.dumps(calls, ensure_ascii=False), 300))
    if not calls:
        return Outcome.failed(message("smoke.no_tool_call"), ev)
    fn = (calls[0] or {}).get("function") or {}
    if fn.get("name") != "get_weather":
        return Outcome.failed(message("smoke.wrong_tool", name=repr(fn.get("name"))), ev)
    try:
        args = json.loads(fn.get("arguments") or "")
    except ValueError as exc:
        return Outcome.failed(message("smoke.arguments_not_json", error=str(exc)), ev)
    problems = schema_problems(args, WEATHER_TOOL["function"]["parameters"])
    if problems:
        return Outcome.failed(joined(problems), ev)
    arguments = json.dumps(args, ensure_ascii=False)
    return Outcome.passed(message("smoke.tool_called", arguments=arguments), ev)
