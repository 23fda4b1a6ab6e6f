"""``compare_dumps``: two reference dumps, tensor by tensor, with a verdict and the layer where
the error appears.

Dump A is the golden one (relative errors are relative to A). The dumps must hold the same
prompts with the same token ids from the same tokenizer; anything else is refused before a
single tensor is read. Each tensor's metrics are accumulated over all prompts. Two dumps that
scored the same continuations teacher-forced (the precision gate's) are compared at every
continuation position; two greedy ones up to each prompt's first divergence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from adaptgate.errors import DumpError
from adaptgate.messages import said
from adaptgate.metrics.limits import evaluate
from adaptgate.metrics.logits import (
    GenerationMetrics,
    LogitAccumulator,
    TensorAccumulator,
    generation_metrics,
)
from adaptgate.precision.localize import localize
from adaptgate.precision.models import CompareResult, DumpSummary, TensorRow
from adaptgate.precision.thresholds import failed_reason, load_thresholds
from adaptgate.reference.dump import DumpReader, ReferenceDump, gen_key, open_dump


def check_comparable(a: ReferenceDump, b: ReferenceDump) -> None:
    """Raises :class:`DumpError` (one line) unless both dumps ran the same token ids."""
    fix = "produce both dumps with the same --prompts file and the same tokenizer"
    if a.model.tokenizer_hash != b.model.tokenizer_hash:
        raise DumpError(
            f"the dumps come from different tokenizers ({a.model.tokenizer_hash[:12]} vs "
            f"{b.model.tokenizer_hash[:12]})",
            fix=fix,
        )
    if [p.id for p in a.prompts] != [p.id for p in b.prompts]:
        raise DumpError(
            f"the dumps hold different prompts ({len(a.prompts)}: "
            f"{', '.join(p.id for p in a.prompts[:4])} vs {len(b.prompts)}: "
            f"{', '.join(p.id for p in b.prompts[:4])})",
            fix=fix,
        )
    for pa, pb in zip(a.prompts, b.prompts, strict=True):
        if pa.rendered != pb.rendered or pa.token_ids != pb.token_ids:
            raise DumpError(
                f"prompt {pa.id!r} differs between the dumps (text or token ids: "
                f"{len(pa.token_ids)} vs {len(pb.token_ids)} tokens)",
                fix=fix,
            )
    if a.model.vocab_size != b.model.vocab_size:
        raise DumpError(
            f"the models' vocabularies differ ({a.model.vocab_size} vs {b.model.vocab_size})",
            fix="compare dumps of the same model family",
        )


def _tensor_row(
    a: DumpReader, b: DumpReader, key_of: str, name: str, with_logits: bool
) -> TensorRow | None:
    acc, logit_acc = TensorAccumulator(), LogitAccumulator()
    for k in range(len(a.meta.prompts)):
        key = f"prompt.{k}.{key_of}"
        if not (a.has(key) and b.has(key)):
            return None
        ta, tb = a.tensor(key), b.tensor(key)
        acc.add(ta, tb)
        if with_logits:
            logit_acc.add(ta, tb)
    return TensorRow(
        name=name, metrics=acc.result(), logits=logit_acc.result() if with_logits else None
    )


def same_forced_text(a: ReferenceDump, b: ReferenceDump) -> bool:
    """Both dumps scored the same continuations teacher-forced: every position of them has the
    same context on both sides."""
    return a.continuation == b.continuation == "forced" and all(
        pa.generated_ids == pb.generated_ids for pa, pb in zip(a.prompts, b.prompts, strict=True)
    )


def _generation(a: DumpReader, b: DumpReader) -> tuple[GenerationMetrics | None, TensorRow | None]:
    """Continuation logits where both sides share the context, and the agreement of the tokens:
    on the same forced text, of the two models' argmax at every position; otherwise of the greedy
    continuations, up to their first divergence."""
    forced = same_forced_text(a.meta, b.meta)
    pairs = [
        (a.argmax(k), b.argmax(k)) if forced else (pa.generated_ids, pb.generated_ids)
        for k, (pa, pb) in enumerate(zip(a.meta.prompts, b.meta.prompts, strict=True))
    ]
    if not any(x or y for x, y in pairs):
        return None, None
    gen = generation_metrics(pairs)
    acc, logit_acc = TensorAccumulator(), LogitAccumulator()
    for k, ((ga, gb), first) in enumerate(zip(pairs, gen.first_divergence, strict=True)):
        shared = min(len(ga), len(gb))
        steps = shared if first is None or forced else min(first + 1, shared)
        if steps == 0:
            continue
        ta = a.tensor(gen_key(k, "logits"))[:steps]
        tb = b.tensor(gen_key(k, "logits"))[:steps]
        acc.add(ta, tb)
        logit_acc.add(ta, tb)
    row = TensorRow(name="gen.logits", metrics=acc.result(), logits=logit_acc.result())
    return gen, row


def _values(row: TensorRow) -> dict[str, float | None]:
    values: dict[str, float | None] = dict(row.metrics.model_dump())
    if row.logits is not None:
        values.update(row.logits.model_dump())
    return values


def compare_dumps(
    path_a: Path,
    path_b: Path,
    *,
    thresholds_file: Path | None = None,
    profile: str | None = None,
    plot_path: Path | None = None,
) -> CompareResult:
    thresholds = load_thresholds(thresholds_file, profile)
    a, b = open_dump(path_a), open_dump(path_b)
    check_comparable(a.meta, b.meta)
    limits = thresholds.limits
    rows: list[TensorRow] = []
    logits = _tensor_row(a, b, "logits", "logits", with_logits=True)
    if logits is None:
        raise DumpError("a dump lacks its logits", fix="regenerate it with `adaptgate reference`")
    rows.append(logits)
    depth: list[TensorRow] = []
    embed = _tensor_row(a, b, "hidden.embed", "embed", with_logits=False)
    if embed is not None:
        depth.append(embed)
    layer_path = a.meta.model.layer_path
    for i in sorted(set(a.meta.layers) & set(b.meta.layers)):
        row = _tensor_row(a, b, f"hidden.{i}", f"layer.{i}", with_logits=False)
        if row is not None:
            row.layer, row.module = i, f"{layer_path}.{i}"
            depth.append(row)
    rows[1:1] = depth
    gen, gen_row = _generation(a, b)
    if gen_row is not None:
        rows.append(gen_row)

    checks = evaluate("logits", limits.logits, _values(logits))
    loc = localize(depth, limits.hidden, limits.jump)
    checks += loc.checks
    if gen is not None:
        checks += evaluate("generation", limits.generation, dict(gen.model_dump()))
    failed = [c for c in checks if not c.passed]
    verdict: Literal["PASS", "FAIL"] = "FAIL" if failed else "PASS"
    if failed:
        reason = failed_reason(failed)
        if loc.name is not None:
            reason = said("precision.error_at", where=loc.module or loc.name, failed=reason)
    else:
        reason = said("precision.within", checks=len(checks), profile=thresholds.profile)
    result = CompareResult(
        reference=DumpSummary.of(a),
        candidate=DumpSummary.of(b),
        thresholds=thresholds,
        prompts=len(a.meta.prompts),
        tensors=rows,
        generation=gen,
        checks=checks,
        localization=loc,
        verdict=verdict,
        reason=reason,
    )
    if plot_path is not None and depth:
        from adaptgate.precision.plot import plot_depth

        result.plot = str(plot_depth(result, plot_path))
    return result
