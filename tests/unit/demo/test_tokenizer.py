"""The demo tokenizer loads with transformers, round-trips Chinese and renders the chat template."""

from __future__ import annotations

import json

import pytest

from adaptgate.demo import tokenizer as demo_tok

CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather.", "parameters": CITY},
    }
]


@pytest.fixture(scope="module")
def tok(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model("qwen3", "bf16"))


def test_committed_tokenizer_is_the_trained_one():
    assert json.loads(demo_tok.train_tokenizer()) == json.loads(demo_tok.tokenizer_json())


def test_sizes_and_ids_agree_with_configs(tok, tiny_model):
    ids = demo_tok.token_ids()
    assert len(tok) == ids["vocab_size"] and len(tok) % 128 == 0
    for arch in ("qwen3", "glm4_moe"):
        cfg = json.loads((tiny_model(arch, "bf16") / "config.json").read_text())
        assert cfg["vocab_size"] == len(tok)
    cfg = json.loads((tiny_model("qwen3", "bf16") / "config.json").read_text())
    assert cfg["eos_token_id"] == tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    assert cfg["bos_token_id"] == tok.pad_token_id == tok.convert_tokens_to_ids("<|endoftext|>")
    for content, _ in demo_tok.ADDED_TOKENS:
        assert tok.convert_tokens_to_ids(content) == ids[content]


TEXTS = [
    "北京今天天气很好，我们去公园散步吧。",
    "def f(x):\n    return x * 2",
    "12 × 12 = 144; 0.1 + 0.2 = 0.3",
    "emoji 🙂 and ümlaut",
]


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(tok, text):
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert len(ids) < len(text.encode()) or text.isascii()  # BPE merged something


def test_digits_split_one_by_one(tok):
    assert len(tok.encode("12345")) == 5


def test_chat_template_with_tools_and_thinking(tok):
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "上海天气？"},
        {"role": "assistant", "content": "",
         "tool_calls": [{"type": "function",
                         "function": {"name": "get_weather", "arguments": {"city": "Shanghai"}}}]},
        {"role": "tool", "content": '{"temperature": 22}'},
        {"role": "assistant", "content": "22 度。", "reasoning_content": "The tool said 22."},
    ]  # fmt: skip
    text = tok.apply_chat_template(messages, tools=TOOLS, tokenize=False)
    assert text.startswith("<|im_start|>system\nYou are helpful.\n\n# Tools")
    assert '"name": "get_weather"' in text and "<tools>" in text
    call = '{"name": "get_weather", "arguments": {"city": "Shanghai"}}'
    assert f"<tool_call>\n{call}\n</tool_call>" in text
    response = '<tool_response>\n{"temperature": 22}\n</tool_response>'
    assert f"<|im_start|>user\n{response}<|im_end|>" in text
    # reasoning after the last user query is kept in <think> tags
    assert "<think>\nThe tool said 22.\n</think>\n\n22 度。<|im_end|>" in text
    ids = tok.apply_chat_template(messages, tools=TOOLS, tokenize=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert tok.decode(ids) == text


def test_enable_thinking_and_history(tok):
    history = [
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "<think>\nadd\n</think>\n\n2"},
        {"role": "user", "content": "2+2?"},
    ]
    off = tok.apply_chat_template(history, tokenize=False, add_generation_prompt=True,
                                  enable_thinking=False)  # fmt: skip
    on = tok.apply_chat_template(history, tokenize=False, add_generation_prompt=True)
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert on.endswith("<|im_start|>assistant\n")
    assert "add" not in on  # earlier turns' reasoning is dropped
    assert "<|im_start|>assistant\n2<|im_end|>" in on
