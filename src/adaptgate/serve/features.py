"""What the served model speaks: thinking and tool calling, from its chat template when the
checkpoint is at hand, else from its family and name; and the vLLM parsers that go with it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptgate.messages import Said, said
from adaptgate.serve.knowledge import recipes


@dataclass(frozen=True)
class ChatFeatures:
    thinking: bool
    thinking_only: bool
    tools: bool
    reasoning_parser: str | None
    tool_parser: str | None
    why: Said


def read_chat_template(model_dir: Path | None) -> str | None:
    """The chat template of a checkpoint directory (tokenizer_config.json or a .jinja file)."""
    if model_dir is None or not model_dir.is_dir():
        return None
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8", errors="replace")
    cfg = model_dir / "tokenizer_config.json"
    if cfg.is_file():
        try:
            data: Any = json.loads(cfg.read_text(encoding="utf-8"))
        except ValueError:
            return None
        template = data.get("chat_template") if isinstance(data, dict) else None
        if isinstance(template, str):
            return template
        if isinstance(template, list):  # named templates: [{"name":..., "template":...}]
            return "\n".join(str(t.get("template", "")) for t in template if isinstance(t, dict))
    return None


def _by_name(table: dict[str, str], name: str) -> str | None:
    return next((v for k, v in table.items() if k in name), None)


def chat_features(
    family: str,
    name: str,
    template: str | None,
    *,
    want_reasoning: bool | None,
    want_tools: bool | None,
) -> ChatFeatures:
    row: dict[str, Any] = recipes()["families"].get(family, {})
    lname = name.lower()
    if template is not None:
        thinking = "<think>" in template or "reasoning_content" in template
        # A thinking-only template opens <think> itself, unconditionally, with no switch.
        thinking_only = thinking and "enable_thinking" not in template and "thinking" in lname
        tools = "tools" in template
        why = said("serve.parsers_template")
    else:
        thinking = bool(row.get("thinking_default"))
        if any(n in lname for n in row.get("non_thinking_names", [])):
            thinking = False
        if any(n in lname for n in row.get("thinking_names", [])) or "thinking" in lname:
            thinking = True
        thinking_only = "thinking" in lname
        tools = bool(row.get("tool_parser"))
        why = said("serve.parsers_family", family=family)
    thinking = thinking if want_reasoning is None else (want_reasoning and thinking)
    tools = tools if want_tools is None else (want_tools and tools)
    reasoning_parser = None
    if thinking and row:
        reasoning_parser = (row.get("thinking_only_parser") if thinking_only else None) or row.get(
            "reasoning_parser"
        )
    tool_parser = None
    if tools and row:
        tool_parser = _by_name(row.get("tool_parser_by_name", {}), lname) or row.get("tool_parser")
    return ChatFeatures(
        thinking=thinking,
        thinking_only=thinking_only,
        tools=tools and tool_parser is not None,
        reasoning_parser=reasoning_parser,
        tool_parser=tool_parser,
        why=why,
    )
