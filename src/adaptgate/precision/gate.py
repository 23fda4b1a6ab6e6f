"""The precision gate in ``adaptgate run``. Every comparison is teacher-forced: one pass over
each model's weights, whatever the number of continuation tokens.

1. The served-model check against the server the serve gate left running (``summary["url"]``):
   the server's greedy continuation first, then the CPU FP32 reference of the checkpoint the
   run started from scores prompt + that continuation (layer-streamed when it does not fit the
   memory budget) -> ``<run>/precision/reference``; judged under ``device`` thresholds for an
   exact route and ``quantized`` for an int8 one. No server: SKIPPED with the reason, and the
   reference decodes greedily instead -- in full-load mode only (see :func:`_source_config`).
2. When the convert gate produced a model: that model's reference (computed the way Ascend would
   when it is W8A8_DYNAMIC: ``--simulate w8a8-dynamic``) scores the SAME forced text as the
   source's dump, compared with it under the ``quantized`` profile -> the layer where a broken
   conversion goes wrong.

The gate's verdict is FAIL if any measured comparison fails; SKIPPED if nothing was compared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adaptgate.gate import Gate, GateOutcome, RunContext
from adaptgate.messages import Message, message
from adaptgate.precision.models import (
    PrecisionGateResult,
    ServedConfig,
)
from adaptgate.record import GateStatus
from adaptgate.reference.api import ReferenceConfig


def _is_int8(model: str) -> bool:
    """W8A8 in either layout the converter writes: msModelSlim's or compressed-tensors'."""
    from adaptgate.checkpoint import open_checkpoint
    from adaptgate.formats.detect import detect_quantization

    ckpt = open_checkpoint(model)
    scheme = detect_quantization(ckpt.config, ckpt.tensors, ckpt.quant_description)
    return scheme.label.startswith("W8A8")


def _served_url(ctx: RunContext) -> tuple[str | None, str | None, Message]:
    """The server's URL and model name, or None and why there is no server."""
    server, why = ctx.server()
    if server is None:
        return None, None, why
    return str(server["url"]), server.get("served_model_name"), why


def _reason(result: PrecisionGateResult) -> Message:
    """Each comparison's verdict with its reason, or why the served check did not run."""
    c, s = result.conversion, result.served
    parts = [message(f"precision.conversion_{c.verdict.lower()}", reason=c.reason)] if c else []
    parts.append(
        message(f"precision.served_{s.verdict.lower()}", reason=s.reason)
        if s
        else message("precision.served_skipped", why=result.served_skipped)
    )
    if len(parts) == 1:
        return parts[0]
    return message("precision.both", first=parts[0], second=parts[1])


def _summary(result: PrecisionGateResult) -> dict[str, Any]:
    ref = result.reference
    out: dict[str, Any] = {
        "reference_mode": ref.mode,
        "reference_seconds": ref.timings.total_seconds if ref.timings else None,
        "prompts": len(ref.prompts),
    }
    if result.conversion is not None:
        c = result.conversion
        logits = c.row("logits")
        out["conversion_verdict"] = c.verdict
        out["conversion_logits_cosine"] = logits.metrics.cosine if logits else None
        out["conversion_localized"] = c.localization.module or c.localization.name
    if result.served is not None:
        m = result.served.metrics
        out.update(
            served_verdict=result.served.verdict,
            exact_match_rate=m.exact_match_rate,
            first_mismatch_in_topk=m.first_mismatch_in_topk,
            logprob_abs_diff_mean=m.logprob_abs_diff_mean,
            topk_kl_mean=m.topk_kl_mean,
        )
    return out


class PrecisionGate(Gate):
    name = "precision"
    title = "Precision (CPU FP32 reference, conversion compare, served-model check)"

    def __init__(
        self,
        *,
        prompts_file: Path | None = None,
        max_new_tokens: int = 32,
    ) -> None:
        self.prompts_file = prompts_file  # None: the built-in prompt set
        self.max_new_tokens = max_new_tokens
        self.max_memory: int | None = None  # run --max-memory; None: from MemAvailable

    def _config(self, model: str, out: Path, **kw: object) -> ReferenceConfig:
        return ReferenceConfig.model_validate(
            {
                "model": model,
                "out": out,
                "prompts_file": self.prompts_file,
                "max_new_tokens": self.max_new_tokens,
                "max_memory": self.max_memory,
                **kw,
            }
        )

    def _source_config(self, model: str, out: Path) -> ReferenceConfig:
        """With no server, the source's own greedy continuation becomes the forced text the
        converted model is scored on. Greedy costs one pass over the weights per token: fine
        when the model is loaded once, but in streamed mode that is a re-read of the checkpoint
        per token (33 passes for 32 tokens), so there the reference stops at the prompt. That is
        still sound: every prompt position is a teacher-forced distribution with the same
        context in both models, which is what locates a broken conversion."""
        from adaptgate.reference.api import streams

        cfg = self._config(model, out)
        stream = streams(cfg)
        tokens = 0 if stream else cfg.max_new_tokens
        return cfg.model_copy(update={"stream": stream, "max_new_tokens": tokens})

    def run(self, ctx: RunContext) -> GateOutcome:
        from adaptgate.precision.compare import compare_dumps
        from adaptgate.precision.served import check_served_forced
        from adaptgate.reference.api import build_reference

        out_dir = ctx.gate_dir(self.name)
        self.max_memory = ctx.settings.max_memory
        source = ctx.settings.model
        served_model = ctx.model_path
        int8 = served_model != source and _is_int8(served_model)
        url, name, why = _served_url(ctx)
        ref_dir = out_dir / "reference"
        served = None
        if url is None:
            ctx.out.status("  building the CPU FP32 reference ...")
            reference = build_reference(self._source_config(source, ref_dir))
        else:
            ctx.out.status("  scoring the server's continuation under the CPU FP32 reference ...")
            served, reference = check_served_forced(
                ServedConfig(
                    url=url,
                    reference=ref_dir,
                    model=name,
                    profile="quantized" if int8 else "device",
                ),
                self._config(source, ref_dir),
            )
        result = PrecisionGateResult(
            reference=reference, served=served, served_skipped=None if served else why.said
        )
        artifacts: list[Path] = [ref_dir]
        if served_model != source:
            ctx.out.status("  scoring the same text under the converted model's reference ...")
            build_reference(
                self._config(
                    served_model,
                    out_dir / "reference-converted",
                    simulate="w8a8-dynamic" if int8 else None,
                    continuations_from=ref_dir,
                )
            )
            result.conversion = compare_dumps(
                ref_dir,
                out_dir / "reference-converted",
                profile="quantized",
                plot_path=out_dir / "conversion-depth.png",
            )
            artifacts += [out_dir / "reference-converted", out_dir / "conversion-depth.png"]
        result.write_json(out_dir / "precision.json")
        artifacts.append(out_dir / "precision.json")
        measured = [r for r in (result.conversion, result.served) if r is not None]
        if not measured:
            status = GateStatus.SKIPPED
        elif any(r.verdict == "FAIL" for r in measured):
            status = GateStatus.FAIL
        else:
            status = GateStatus.PASS
        return GateOutcome.said(
            status, _reason(result), summary=_summary(result), result=result, artifacts=artifacts
        )
