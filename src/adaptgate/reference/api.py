"""``build_reference``: the one call behind ``adaptgate reference``: greedy decoding, or the
teacher-forced scoring of given continuations (one pass over the weights)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from adaptgate.errors import DumpError, UsageError
from adaptgate.reference.dump import (
    ModelFacts,
    PromptRecord,
    ReferenceDump,
    Timings,
    gen_key,
    hidden_key,
    open_dump,
    prompt_key,
    write_dump,
)
from adaptgate.reference.identity import tokenizer_fingerprint
from adaptgate.reference.memory import peak_rss_bytes, trim_heap
from adaptgate.reference.prompts import (
    EncodedPrompt,
    Prompt,
    builtin_prompts,
    encode_prompts,
    load_prompts,
)

if TYPE_CHECKING:
    import torch

    from adaptgate.reference.session import Generation, ReferenceSession, RunStats


class ReferenceConfig(BaseModel):
    """What ``adaptgate reference`` was asked to do."""

    model_config = ConfigDict(extra="forbid")

    model: str
    out: Path
    device: str = "cpu"
    dtype: Literal["float32", "bfloat16"] = "float32"
    prompts_file: Path | None = None
    max_new_tokens: int = Field(default=32, ge=0)
    top_k: int = Field(default=20, ge=1, description="log-probabilities kept per generated token")
    layers: list[int] | None = Field(default=None, description="None = every decoder layer")
    stream: bool | None = Field(default=None, description="None = when the model does not fit")
    simulate: Literal["w8a8-dynamic"] | None = None
    continuations: list[list[int]] | None = Field(
        default=None,
        description="token ids scored teacher-forced after each prompt, in prompt order "
        "(one pass); None = greedy decoding of max_new_tokens",
    )
    continuations_from: Path | None = Field(
        default=None, description="a dump whose continuations (generated_ids) are scored"
    )
    max_memory: int | None = Field(
        default=None, ge=0, description="bytes of weights to hold; None = from MemAvailable"
    )


def parse_layers(spec: str | None) -> list[int] | None:
    """``all`` / None -> every layer; ``none`` -> []; ``0,5,10`` or ``0-3,7`` -> those."""
    if spec is None or spec.strip().lower() == "all":
        return None
    if spec.strip().lower() == "none":
        return []
    out: list[int] = []
    try:
        for part in spec.split(","):
            lo, _, hi = part.strip().partition("-")
            out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    except ValueError:
        raise UsageError(
            f"cannot read layer list {spec!r}", fix="use all, none, or e.g. 0,5,10 or 0-3"
        ) from None
    return sorted(set(out))


def _facts(session: ReferenceSession) -> ModelFacts:
    cfg = session.lm.model.config.get_text_config()
    arch = (session.ckpt.config.get("architectures") or [type(session.lm.model).__name__])[0]
    return ModelFacts(
        path=str(session.ckpt.root),
        architecture=str(arch),
        model_type=str(getattr(cfg, "model_type", "")),
        num_layers=session.lm.num_layers,
        layer_path=session.lm.layer_path,
        hidden_size=getattr(cfg, "hidden_size", None),
        vocab_size=getattr(cfg, "vocab_size", None),
        quantization=session.weights.scheme_label,
        model_hash=session.weights.model_hash(),
        tokenizer_hash=tokenizer_fingerprint(session.tokenizer),
        ignored_tensors=session.lm.ignored,
        unexpected_tensors=session.lm.unexpected,
    )


def _tensors(gens: list[Generation]) -> dict[str, torch.Tensor]:
    import torch

    out: dict[str, torch.Tensor] = {}
    for k, g in enumerate(gens):
        out[prompt_key(k, "logits")] = g.prompt_logits
        for layer, h in g.hidden.items():
            out[hidden_key(k, layer)] = h
        if g.tokens:
            out[gen_key(k, "logits")] = torch.stack(g.step_logits)
            out[gen_key(k, "logprobs")] = torch.tensor(g.logprobs, dtype=torch.float32)
            out[gen_key(k, "topk_ids")] = torch.stack(g.topk_ids)
            out[gen_key(k, "topk_logprobs")] = torch.stack(g.topk_logprobs)
            out[gen_key(k, "argmax")] = torch.tensor(g.argmax, dtype=torch.int64)
            out[gen_key(k, "ranks")] = torch.tensor(g.ranks, dtype=torch.int64)
    return out


def encoded_prompts(cfg: ReferenceConfig) -> list[EncodedPrompt]:
    """The prompts as the reference feeds them, without loading the model: what a server is
    asked before the reference scores its answer."""
    from adaptgate.checkpoint import open_checkpoint
    from adaptgate.reference.session import load_tokenizer

    return encode_prompts(_prompts(cfg), load_tokenizer(open_checkpoint(cfg.model).root))


def streams(cfg: ReferenceConfig) -> bool:
    """Whether ``build_reference(cfg)`` runs layer-streamed (the session's rule, read from the
    checkpoint's headers without loading it)."""
    from adaptgate.checkpoint import open_checkpoint
    from adaptgate.reference.memory import memory_budget, should_stream
    from adaptgate.reference.session import ELEMENT_SIZE
    from adaptgate.reference.weights import open_weights

    if cfg.stream is not None:
        return cfg.stream
    weights = open_weights(open_checkpoint(cfg.model))
    return should_stream(
        weights, ELEMENT_SIZE[cfg.dtype], cfg.device, memory_budget(cfg.max_memory)
    )


def _prompts(cfg: ReferenceConfig) -> list[Prompt]:
    return load_prompts(cfg.prompts_file) if cfg.prompts_file else builtin_prompts()


def _continuations(cfg: ReferenceConfig, encoded: list[EncodedPrompt]) -> list[list[int]] | None:
    if cfg.continuations is not None and cfg.continuations_from is not None:
        raise UsageError("continuations given twice", fix="give a list or a dump, not both")
    if cfg.continuations_from is not None:
        source = open_dump(cfg.continuations_from).meta
        by_id = {p.id: p for p in source.prompts}
        forced = []
        for e in encoded:
            rec = by_id.get(e.prompt.id)
            if rec is None or rec.token_ids != e.token_ids:
                raise DumpError(
                    f"{cfg.continuations_from} has no prompt {e.prompt.id!r} with these token ids",
                    fix="use the prompts file and tokenizer that dump was made with",
                )
            forced.append(list(rec.generated_ids))
        return forced
    if cfg.continuations is not None and len(cfg.continuations) != len(encoded):
        raise UsageError(
            f"{len(cfg.continuations)} continuations for {len(encoded)} prompts",
            fix="give one continuation (possibly empty) per prompt",
        )
    return cfg.continuations


def _timings(session: ReferenceSession, stats: RunStats, total: float) -> Timings:
    load = session.total_load_seconds()
    return Timings(
        load_seconds=round(load, 4),
        forward_seconds=round(stats.total_seconds - stats.load_seconds, 4),
        total_seconds=round(total, 4),
        peak_rss_bytes=peak_rss_bytes(),
        passes=stats.passes,
        bytes_read_per_pass=stats.bytes_read,
        bytes_read_total=session.weights.bytes_read,
        experts_read_per_pass=stats.experts_read if session.routed_experts() else [],
        routed_experts=session.routed_experts() or None,
        cache_hits=stats.cache_hits,
        cache_bytes=session.lm.kept_bytes,
        memory_budget_bytes=session.memory_budget,
    )


def build_reference(
    cfg: ReferenceConfig,
    *,
    on_unit: Callable[[str], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> ReferenceDump:
    """Runs the reference and writes the dump into ``cfg.out``. ``on_start`` receives the
    expected number of load/run units (for a progress bar), ``on_unit`` each finished one."""
    from adaptgate.reference.session import ReferenceSession

    t0 = time.perf_counter()
    prompts = _prompts(cfg)
    session = ReferenceSession(
        cfg.model,
        device=cfg.device,
        dtype=cfg.dtype,
        stream=cfg.stream,
        simulate=cfg.simulate,
        max_memory=cfg.max_memory,
    )
    layers = list(range(session.lm.num_layers)) if cfg.layers is None else cfg.layers
    bad = [i for i in layers if not 0 <= i < session.lm.num_layers]
    if bad:
        raise UsageError(
            f"layer {bad[0]} does not exist (the model has {session.lm.num_layers})",
            fix=f"choose layers in 0..{session.lm.num_layers - 1}",
        )
    encoded = encode_prompts(prompts, session.tokenizer)
    forced = _continuations(cfg, encoded)
    if on_start is not None:
        passes = 1 if forced is not None else max(1, cfg.max_new_tokens)
        on_start(session.units_per_pass() * passes)
    if forced is not None:
        gens, stats = session.score(
            encoded, forced, top_k=cfg.top_k, capture=set(layers), on_unit=on_unit
        )
    else:
        gens, stats = session.run(
            encoded,
            max_new_tokens=cfg.max_new_tokens,
            top_k=cfg.top_k,
            capture=set(layers),
            on_unit=on_unit,
        )
    records = [
        PromptRecord(
            id=e.prompt.id,
            category=e.prompt.category,
            chat=e.prompt.is_chat,
            text=e.prompt.text,
            rendered=e.rendered,
            token_ids=e.token_ids,
            generated_ids=g.tokens,
            generated_text=session.tokenizer.decode(g.tokens),
            stop_reason="eos" if g.stop_reason == "eos" else "length",
        )
        for e, g in zip(encoded, gens, strict=True)
    ]
    meta = ReferenceDump(
        model=_facts(session),
        device=str(session.lm.device),
        dtype=cfg.dtype,
        mode="streamed" if session.stream else "full",
        simulate=cfg.simulate,
        attn_implementation=session.describe()["attn_implementation"],
        layers=layers,
        continuation="greedy" if forced is None else "forced",
        max_new_tokens=cfg.max_new_tokens if forced is None else max(map(len, forced), default=0),
        top_k=cfg.top_k,
        eos_token_ids=session.eos_token_ids,
        prompts=records,
        timings=_timings(session, stats, time.perf_counter() - t0),
    )
    write_dump(cfg.out, meta, _tensors(gens))
    del gens
    trim_heap()  # the pass's tensors go back to the OS, not to a later pass's high-water mark
    return meta
