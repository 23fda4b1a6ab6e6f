"""``build_reference``: the one call behind ``adaptgate reference``."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from adaptgate.errors import UsageError
from adaptgate.reference.dump import (
    ModelFacts,
    PromptRecord,
    ReferenceDump,
    Timings,
    gen_key,
    hidden_key,
    prompt_key,
    write_dump,
)
from adaptgate.reference.identity import tokenizer_fingerprint
from adaptgate.reference.memory import peak_rss_bytes
from adaptgate.reference.prompts import builtin_prompts, encode_prompts, load_prompts

if TYPE_CHECKING:
    import torch

    from adaptgate.reference.session import Generation, ReferenceSession


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
    return out


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
    prompts = load_prompts(cfg.prompts_file) if cfg.prompts_file else builtin_prompts()
    session = ReferenceSession(
        cfg.model, device=cfg.device, dtype=cfg.dtype, stream=cfg.stream, simulate=cfg.simulate
    )
    layers = list(range(session.lm.num_layers)) if cfg.layers is None else cfg.layers
    bad = [i for i in layers if not 0 <= i < session.lm.num_layers]
    if bad:
        raise UsageError(
            f"layer {bad[0]} does not exist (the model has {session.lm.num_layers})",
            fix=f"choose layers in 0..{session.lm.num_layers - 1}",
        )
    encoded = encode_prompts(prompts, session.tokenizer)
    if on_start is not None:
        on_start(session.units_per_pass() * max(1, cfg.max_new_tokens))
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
    load = session.total_load_seconds()
    total = time.perf_counter() - t0
    meta = ReferenceDump(
        model=_facts(session),
        device=str(session.lm.device),
        dtype=cfg.dtype,
        mode="streamed" if session.stream else "full",
        simulate=cfg.simulate,
        attn_implementation=session.describe()["attn_implementation"],
        layers=layers,
        max_new_tokens=cfg.max_new_tokens,
        top_k=cfg.top_k,
        eos_token_ids=session.eos_token_ids,
        prompts=records,
        timings=Timings(
            load_seconds=round(load, 4),
            forward_seconds=round(stats.total_seconds - stats.load_seconds, 4),
            total_seconds=round(total, 4),
            peak_rss_bytes=peak_rss_bytes(),
        ),
    )
    write_dump(cfg.out, meta, _tensors(gens))
    return meta
