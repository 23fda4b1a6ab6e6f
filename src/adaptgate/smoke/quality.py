"""Model-quality checks: answers a working model gets right and a random one does not. They
are reported apart from the protocol checks and never decide the smoke gate's verdict."""

from __future__ import annotations

import json
import re
from typing import Any

from adaptgate.client import choice_of, message_of, reasoning_of
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
    where = ""
    if reasoning:
        where = (
            ": the token budget ended inside the reasoning"
            if finish == "length"
            else ": the reply ended inside the reasoning"
        )
    return Outcome.failed(
        f"no final answer (finish_reason {finish}){where}",
        evidence(reply, reasoning=excerpt(reasoning, 200)),
    )


@check("chinese", "a Chinese question gets a mostly-CJK answer", "quality")
def chinese(ctx: SmokeContext) -> Outcome:
    reply, reasoning, answer = _answer(ctx, CHINESE_PROMPT)
    if fail := http_failure(reply, "chat"):
        return fail
    if not answer:
        return _no_answer(reply, reasoning)
    ratio = cjk_ratio(answer)
    ev = evidence(reply, answer=excerpt(answer, 200), cjk_ratio=round(ratio, 3))
    if ratio < CJK_MIN_RATIO:
        return Outcome.failed(f"{ratio:.0%} of the answer's letters are CJK", ev)
    return Outcome.passed(f"{ratio:.0%} CJK", ev)


@check("arithmetic", "120 km in 2 hours: the answer is 60", "quality")
def arithmetic(ctx: SmokeContext) -> Outcome:
    reply, reasoning, answer = _answer(ctx, ARITHMETIC_PROMPT)
    if fail := http_failure(reply, "chat"):
        return fail
    if not answer:
        return _no_answer(reply, reasoning)
    numbers = re.findall(r"-?\d+(?:\.\d+)?", answer.replace(",", ""))
    ev = evidence(reply, answer=excerpt(answer, 200), numbers=numbers[:10])
    if any(float(n) == 60 for n in numbers):
        return Outcome.passed("60 in the answer", ev)
    return Outcome.failed(f"no 60 in the answer (numbers: {numbers[:5]})", ev)


@check("thinking", "a thinking model reasons, then answers", "quality")
def thinking(ctx: SmokeContext) -> Outcome:
    if ctx.thinking is False:
        return Outcome.skipped("not a thinking model (the plan has no reasoning parser)")
    reply, reasoning, answer = _answer(ctx, THINKING_PROMPT)
    if fail := http_failure(reply, "chat"):
        return fail
    if ctx.thinking is None and not reasoning:
        return Outcome.skipped("no reasoning in the reply and thinking not declared")
    ev = evidence(reply, reasoning=excerpt(reasoning, 200), answer=excerpt(answer, 200))
    if not reasoning:
        return Outcome.failed("no reasoning (reasoning field empty, no <think> block)", ev)
    if not answer:
        return _no_answer(reply, reasoning)
    return Outcome.passed(f"{len(reasoning)} chars of reasoning, then {len(answer)} of answer", ev)


def schema_problems(args: Any, schema: dict[str, Any]) -> list[str]:
    """A small JSON-schema subset: object, properties with type string/number/integer/
    boolean, enum, required, additionalProperties false."""
    if not isinstance(args, dict):
        return [f"arguments are {type(args).__name__}, not an object"]
    props: dict[str, Any] = schema.get("properties", {})
    problems = [f"missing required {k!r}" for k in schema.get("required", []) if k not in args]
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
                problems.append(f"unexpected property {key!r}")
            continue
        want = types.get(spec.get("type", ""))
        if want is not None and not isinstance(value, want):
            problems.append(f"{key!r} is {type(value).__name__}, not {spec['type']}")
        if "enum" in spec and value not in spec["enum"]:
            problems.append(f"{key!r}={value!r} not in {spec['enum']}")
    return problems


@check("tool_call", "tool calling: JSON arguments matching the schema", "quality")
def tool_call(ctx: SmokeContext) -> Outcome:
    if not ctx.options.tools:
        return Outcome.skipped("the plan does not enable tool calling")
    reply, _, _ = _answer(
        ctx,
        "What is the weather in Paris right now? Use the get_weather tool.",
        tools=[WEATHER_TOOL],
        tool_choice="auto",
    )
    if fail := http_failure(reply, "chat with tools"):
        return fail
    calls = message_of(reply).get("tool_calls") or []
    ev = evidence(reply, tool_calls=excerpt(json.dumps(calls, ensure_ascii=False), 300))
    if not calls:
        return Outcome.failed("no tool call in the reply", ev)
    fn = (calls[0] or {}).get("function") or {}
    if fn.get("name") != "get_weather":
        return Outcome.failed(f"called {fn.get('name')!r}, not get_weather", ev)
    try:
        args = json.loads(fn.get("arguments") or "")
    except ValueError as exc:
        return Outcome.failed(f"arguments are not JSON: {exc}", ev)
    problems = schema_problems(args, WEATHER_TOOL["function"]["parameters"])
    if problems:
        return Outcome.failed("; ".join(problems), ev)
    return Outcome.passed(f"get_weather({json.dumps(args, ensure_ascii=False)})", ev)
