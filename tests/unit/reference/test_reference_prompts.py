"""Prompt sets: the built-in data file, JSONL parsing with line-numbered errors, chat rendering."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from adaptgate.errors import UsageError
from adaptgate.reference.prompts import Prompt, builtin_prompts, encode_prompts, load_prompts


def test_builtin_set_covers_the_seed_capabilities() -> None:
    prompts = builtin_prompts()
    categories = {p.category for p in prompts}
    assert {"english", "chinese", "arithmetic", "code", "long"} <= categories
    assert len({p.id for p in prompts}) == len(prompts)
    long = next(p for p in prompts if p.category == "long")
    assert len(long.text) > 1500
    assert any(p.is_chat for p in prompts)


def test_jsonl_prompts(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"id": "a", "text": "hello"}\n\n{"prompt": "world", "chat": true}\n'
        '{"messages": [{"role": "user", "content": "hi"}]}\n',
        encoding="utf-8",
    )
    prompts = load_prompts(path)
    assert [p.id for p in prompts] == ["a", "p3", "p4"]
    assert prompts[1].text == "world" and prompts[1].is_chat
    assert prompts[2].is_chat


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "a"}\nnot json\n', "p.jsonl:2: not JSON"),
        ('{"id": 1}\n', "p.jsonl:1"),
        ('{"id": "x", "text": "a"}\n{"id": "x", "text": "b"}\n', "appears twice"),
        ("[1, 2]\n", "expected a JSON object"),
        ("\n\n", "holds no prompts"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError, match=message):
        load_prompts(path)


def test_chat_prompts_use_the_template(tiny_model: Callable[..., Path]) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model(arch="qwen3", format="bf16"))
    plain, chat = encode_prompts(
        [Prompt(id="a", text="Hello there"), Prompt(id="b", text="Hello there", chat=True)], tok
    )
    assert plain.rendered == "Hello there"
    assert plain.token_ids == tok("Hello there")["input_ids"]
    assert "<|im_start|>user" in chat.rendered and chat.rendered.rstrip().endswith("assistant")
    assert chat.token_ids == tok(chat.rendered, add_special_tokens=False)["input_ids"]
