"""The SmolLM2 tokenizer written from the GGUF vocabulary.

The oracle is llama.cpp's own tokenization for the GGUF's pre-tokenizer type ``smollm``, written
out here in plain Python (llama-vocab.cpp: ``\\p{N}`` split one by one, then the GPT-2 regex;
byte-level BPE by merge rank), on the GGUF's vocabulary read with the gguf library.

transformers' GGUF tokenizer is wrong for this model in one way, and these tests pin it:
``integrations/gguf/gguf_tokenizer_mapping.py`` has no entry for the ``smollm`` pre-tokenizer, so
it keeps GPT2Tokenizer's plain ``ByteLevel`` and never splits digits first. Where a numeric
character follows two or more whitespace characters (``"a  1"``, ``"\\n\\n42"``, an indented
number in code) the whitespace run can be cut in two (``a Ġ Ġ 1``) instead of staying one token
(``a ĠĠ 1``, as llama.cpp and SmolLM2's own tokenizer.json do); where a numeric character that
is not an ASCII digit follows a space (``" ½"``), the space merges with its first UTF-8 byte
(``ĠÂ ½`` instead of ``Ġ Â½``). It tokenizes exactly as llama.cpp's plain ``gpt2`` pre-tokenizer
type does, and with the digit split added it agrees with the correct tokenizer everywhere.

transformers 5 also builds GPT2Tokenizer (the class SmolLM2's tokenizer_config.json names) with
that same plain ByteLevel, ignoring the pre-tokenizer in tokenizer.json, so
``AutoTokenizer.from_pretrained`` on the written directory shares the difference (as it would
for the real HuggingFaceTB/SmolLM2-135M-Instruct); ``tokenizers.Tokenizer.from_file`` keeps the
digit split.
"""

from __future__ import annotations

import itertools
import json

import pytest

pytestmark = pytest.mark.slow

SAMPLES = [
    "<|im_start|>user\nHello, world! It's 2024; the answer is 42.<|im_end|>\n",
    "北京的天气很好，气温23度。我们下午3点去公园吧！\n",
    "def area(r: float) -> float:\n    return 3.14159 * r ** 2  # ½ of τ\n",
    "x  =  [1,  22,\t333]\n\n\n42 apples and  7 pears\n",
    "   leading spaces, trailing tabs\t\t\n<repo_name>adaptgate<file_sep>main.py\n",
    "  1",
    " ½ and ٣ after a space",
    "x² + 3 = \t½, 4×5=20",
    "<|endoftext|>",
]
TEXT = "".join(SAMPLES)
GPT2_REGEX = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (openai/gpt-2 encoder.py)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]  # fmt: skip
    chars = list(keep)
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(keep, map(chr, chars), strict=True))


class LlamaCppSmollm:
    """llama.cpp's BPE tokenization for pre-tokenizer type ``smollm``, special tokens parsed."""

    def __init__(self, tokens: list[str], types: list[int], merges: list[str]) -> None:
        import regex

        self.regex = regex
        self.ids = {t: i for i, t in enumerate(tokens)}
        self.ranks = {tuple(m.split(" ")): r for r, m in enumerate(merges)}
        self.byte_map = bytes_to_unicode()
        specials = sorted((t for t, k in zip(tokens, types, strict=True) if k == 3), key=len)
        self.specials = set(specials)
        self.special_split = "(" + "|".join(regex.escape(s) for s in reversed(specials)) + ")"

    def _bpe(self, word: str) -> list[str]:
        parts = [self.byte_map[b] for b in word.encode("utf-8")]
        while len(parts) > 1:
            ranked = (self.ranks.get(p, 1 << 30) for p in itertools.pairwise(parts))
            rank, i = min((r, i) for i, r in enumerate(ranked))
            if rank == 1 << 30:
                break
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        return parts

    def encode(self, text: str, *, split_digits: bool = True) -> list[int]:
        """``split_digits=False`` is llama.cpp's plain ``gpt2`` pre-tokenizer type instead."""
        out: list[int] = []
        for chunk in self.regex.split(self.special_split, text):
            if chunk in self.specials:
                out.append(self.ids[chunk])
                continue
            pieces = self.regex.split(r"(\p{N})", chunk) if split_digits else [chunk]
            for piece in pieces:  # regex 1: \p{N}, one by one
                words = self.regex.findall(GPT2_REGEX, piece)  # regex 2: GPT-2's
                assert "".join(words) == piece
                for word in words:
                    out.extend(self.ids[p] for p in self._bpe(word))
        return out


@pytest.fixture(scope="module")
def reference(smollm2_gguf):
    import gguf

    reader = gguf.GGUFReader(smollm2_gguf)
    field = reader.fields
    assert field["tokenizer.ggml.pre"].contents() == "smollm"
    return LlamaCppSmollm(
        field["tokenizer.ggml.tokens"].contents(),
        field["tokenizer.ggml.token_type"].contents(),
        field["tokenizer.ggml.merges"].contents(),
    )


@pytest.fixture(scope="module")
def ours(smollm2_model):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(smollm2_model() / "tokenizer.json"))


@pytest.fixture(scope="module")
def hf_gguf(smollm2_gguf):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_gguf.parent, gguf_file=smollm2_gguf.name)


@pytest.fixture(scope="module")
def hf_ours(smollm2_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_model())


def test_tokenizer_json_matches_llamacpp(ours, reference):
    for sample in [*SAMPLES, TEXT]:
        assert ours.encode(sample).ids == reference.encode(sample), sample
    ids = ours.encode(TEXT).ids
    assert ours.decode(ids, skip_special_tokens=False) == TEXT
    assert ours.encode("a  1").tokens == ["a", "ĠĠ", "1"]


def test_tokenizer_json_pipeline(smollm2_model):
    data = json.loads((smollm2_model() / "tokenizer.json").read_text())
    assert data["normalizer"] is None
    assert data["pre_tokenizer"] == {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    ]}  # fmt: skip
    assert data["post_processor"]["type"] == "ByteLevel"
    assert data["post_processor"]["trim_offsets"] is False
    assert data["decoder"]["type"] == "ByteLevel"
    model = data["model"]
    assert model["type"] == "BPE" and model["unk_token"] is None and model["dropout"] is None
    assert model["byte_fallback"] is False and model["fuse_unk"] is False
    assert len(model["vocab"]) == 49152 and len(model["merges"]) == 48900
    added = data["added_tokens"]
    assert [t["id"] for t in added] == list(range(17))
    assert all(t["special"] and not t["normalized"] for t in added)
    assert [t["content"] for t in added[:3]] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def test_transformers_gguf_tokenizer_differs_only_by_the_digit_split(ours, hf_gguf, reference):
    from tokenizers import Tokenizer, pre_tokenizers

    assert hf_gguf.get_vocab() == ours.get_vocab(with_added_tokens=True)
    # the cause: no Digits step in front of its ByteLevel
    assert "Digits" not in str(hf_gguf.backend_tokenizer.pre_tokenizer)
    fixed = Tokenizer.from_str(hf_gguf.backend_tokenizer.to_str())
    fixed.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), fixed.pre_tokenizer]
    )
    differ = []
    for sample in [*SAMPLES, TEXT]:
        want = ours.encode(sample).ids
        assert fixed.encode(sample).ids == want, sample  # with the split: identical
        theirs = hf_gguf.encode(sample, add_special_tokens=False)
        # without it: exactly llama.cpp's plain gpt2 pre-tokenizer
        assert theirs == reference.encode(sample, split_digits=False), sample
        if theirs != want:
            differ.append(sample)
    assert hf_gguf.convert_ids_to_tokens(hf_gguf.encode("a  1")) == ["a", "Ġ", "Ġ", "1"]
    assert hf_gguf.convert_ids_to_tokens(hf_gguf.encode(" ½")) == ["ĠÂ", "½"]
    assert ours.encode(" ½").tokens == ["Ġ", "Â½"]
    assert TEXT in differ and "  1" in differ and len(differ) < len(SAMPLES)


def test_autotokenizer_on_the_directory(hf_ours, hf_gguf, ours):
    assert type(hf_ours).__name__ == "GPT2Tokenizer"
    for attr in ("bos_token", "eos_token", "pad_token", "unk_token"):
        assert getattr(hf_ours, attr) == getattr(hf_gguf, attr), attr
    assert (hf_ours.bos_token, hf_ours.eos_token, hf_ours.unk_token) == (
        "<|im_start|>", "<|im_end|>", "<|endoftext|>")  # fmt: skip
    assert hf_ours.model_max_length == 8192
    for sample in [*SAMPLES, TEXT]:  # transformers reads the directory as it reads the GGUF
        ids = hf_ours.encode(sample)
        assert ids == hf_gguf.encode(sample), sample
        assert hf_ours.decode(ids) == sample
    special = ours.encode(TEXT).ids
    assert hf_ours.decode(special, skip_special_tokens=True) == hf_gguf.decode(
        special, skip_special_tokens=True
    )


def test_chat_template_renders_identically(hf_ours, hf_gguf, ours, reference):
    conversation = [
        {"role": "system", "content": "You answer in one line."},
        {"role": "user", "content": "What is 12 + 30? 用中文回答。"},
        {"role": "assistant", "content": "42，四十二。"},
        {"role": "user", "content": "And 10 x 10?"},
    ]
    rendered = hf_ours.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    assert rendered == hf_gguf.apply_chat_template(
        conversation, tokenize=False, add_generation_prompt=True
    )
    assert rendered == (
        "<|im_start|>system\nYou answer in one line.<|im_end|>\n"
        "<|im_start|>user\nWhat is 12 + 30? 用中文回答。<|im_end|>\n"
        "<|im_start|>assistant\n42，四十二。<|im_end|>\n"
        "<|im_start|>user\nAnd 10 x 10?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    ids = hf_ours.apply_chat_template(conversation, add_generation_prompt=True, return_dict=True)
    assert ids["input_ids"] == ours.encode(rendered).ids == reference.encode(rendered)
    default = hf_ours.apply_chat_template(conversation[1:2], tokenize=False)
    assert default.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")


def test_tokenizer_config(smollm2_model):
    cfg = json.loads((smollm2_model() / "tokenizer_config.json").read_text())
    assert cfg["tokenizer_class"] == "GPT2Tokenizer"
    assert (cfg["bos_token"], cfg["eos_token"], cfg["pad_token"], cfg["unk_token"]) == (
        "<|im_start|>", "<|im_end|>", "<|im_end|>", "<|endoftext|>")  # fmt: skip
    assert cfg["add_bos_token"] is False and cfg["clean_up_tokenization_spaces"] is False
    assert cfg["model_max_length"] == 8192
    assert sorted(map(int, cfg["added_tokens_decoder"])) == list(range(17))
    assert cfg["added_tokens_decoder"]["2"]["content"] == "<|im_end|>"
    template = cfg["chat_template"]
    assert "<|im_start|>" in template and "add_generation_prompt" in template
