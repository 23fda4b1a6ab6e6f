"""The precision gate in ``adaptgate run``.

1. The CPU FP32 reference of the checkpoint the run started from (layer-streamed when it does
   not fit in memory) -> ``<run>/precision/reference``.
2. When the convert gate produced a model: that model's reference (computed the way Ascend would
   when it is W8A8_DYNAMIC: ``--simulate w8a8-dynamic``), compared with the original's under the
   ``quantized`` profile -> the layer where a broken conversion goes wrong.
3. The served-model check against the server the serve gate left running
   (``summary["url"]``), under ``device`` thresholds for an exact route and ``quantized`` for
   an int8 one. No server: the check is SKIPPED with the reason.

The gate's verdict is FAIL if any measured comparison fails; SKIPPED if nothing was compared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adaptgate.gate import Gate, GateOutcome, RunContext
from adaptgate.precision.models import (
    PrecisionGateResult,
    ServedConfig,
)
from adaptgate.record import GateStatus
from adaptgate.reference.dump import ReferenceDump


def _is_int8(model: str) -> bool:
    """W8A8 in either layout the converter writes: msModelSlim's or compressed-tensors'."""
    from adaptgate.checkpoint import open_checkpoint
    from adaptgate.formats.detect import detect_quantization

    ckpt = open_checkpoint(model)
    scheme = detect_quantization(ckpt.config, ckpt.tensors, ckpt.quant_description)
    return scheme.label.startswith("W8A8")


def _served_url(ctx: RunContext) -> tuple[str | None, str | None, str]:
    server, why = ctx.server()
    if server is None:
        return None, None, why.text
    return str(server["url"]), server.get("served_model_name"), ""


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

    def __init__(self, *, prompts_file: Path | None = None, max_new_tokens: int = 32) -> None:
        self.prompts_file = prompts_file  # None: the built-in prompt set
        self.max_new_tokens = max_new_tokens

    def _reference(self, model: str, out: Path, simulate: str | None = None) -> ReferenceDump:
        from adaptgate.reference.api import ReferenceConfig, build_reference

        cfg = ReferenceConfig(
            model=model,
            out=out,
            prompts_file=self.prompts_file,
            max_new_tokens=self.max_new_tokens,
            simulate=simulate,
        )
        return build_reference(cfg)

    def run(self, ctx: RunContext) -> GateOutcome:
        from adaptgate.precision.compare import compare_dumps
        from adaptgate.precision.served import check_served

        out_dir = ctx.gate_dir(self.name)
        source = ctx.settings.model
        ctx.out.status("  building the CPU FP32 reference ...")
        reference = self._reference(source, out_dir / "reference")
        result = PrecisionGateResult(reference=reference)
        artifacts: list[Path] = [out_dir / "reference"]
        served_model = ctx.model_path
        int8 = False
        if served_model != source:
            int8 = _is_int8(served_model)
            ctx.out.status("  building the converted model's reference ...")
            self._reference(
                served_model,
                out_dir / "reference-converted",
                simulate="w8a8-dynamic" if int8 else None,
            )
            result.conversion = compare_dumps(
                out_dir / "reference",
                out_dir / "reference-converted",
                profile="quantized",
                plot_path=out_dir / "conversion-depth.png",
            )
            artifacts += [out_dir / "reference-converted", out_dir / "conversion-depth.png"]
        url, name, why_not = _served_url(ctx)
        if url is None:
            result.served_skipped = why_not
        else:
            result.served = check_served(
                ServedConfig(
                    url=url,
                    reference=out_dir / "reference",
                    model=name,
                    profile="quantized" if int8 else "device",
                )
            )
        result.write_json(out_dir / "precision.json")
        artifacts.append(out_dir / "precision.json")
        measured = [r for r in (result.conversion, result.served) if r is not None]
        reasons = []
        if result.conversion is not None:
            reasons.append(f"conversion {result.conversion.verdict}: {result.conversion.reason}")
        if result.served is not None:
            reasons.append(f"served {result.served.verdict}: {result.served.reason}")
        else:
            reasons.append(f"served-model check skipped: {why_not}")
        if not measured:
            status = GateStatus.SKIPPED
        elif any(r.verdict == "FAIL" for r in measured):
            status = GateStatus.FAIL
        else:
            status = GateStatus.PASS
        return GateOutcome(
            status, "; ".join(reasons), summary=_summary(result), result=result, artifacts=artifacts
        )
