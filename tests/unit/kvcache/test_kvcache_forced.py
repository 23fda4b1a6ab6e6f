"""The teacher-forced pass over the layers (kvcache.forced): streamed equals full load, its
attention over the simulated cache equals the free-running measurement's teacher-forced part,
calibration on the way equals the calibration prefill, and the reads are counted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from adaptgate.kvcache.forced import (
    Calibrating,
    ForcedText,
    forced_simulation,
    full_load_reads,
    unit_bytes,
)
from adaptgate.kvcache.formats import KV_FORMATS
from adaptgate.kvcache.run import Simulation, calibrate, model_shape, simulate
from adaptgate.kvcache.scales import calibrated_scales, unit_scales
from adaptgate.kvcache.sim import Arm
from adaptgate.reference.prompts import EncodedPrompt, Prompt
from adaptgate.reference.session import ReferenceSession

LENGTHS = (7, 30)
STEPS = 12


def _prompts() -> list[list[int]]:
    g = torch.Generator().manual_seed(0)
    return [torch.randint(5, 1000, (n,), generator=g).tolist() for n in LENGTHS]


def _arms(session: ReferenceSession, factor: dict[str, float]) -> list[Arm]:
    """Scales small enough that every format moves the logits (FP8 clips, int8 rounds)."""
    shape = model_shape(session)
    out = []
    for name, f in factor.items():
        fmt = KV_FORMATS.get(name)
        ss = unit_scales(fmt, shape.num_layers, shape.kv_heads * shape.head_dim)
        for layer in ss.layers:
            layer.k, layer.v = layer.k * f, layer.v * f
        out.append(Arm(ss, fmt.prefill, shape.kv_heads, shape.head_dim, torch.float32))
    return out


FACTORS = {"fp8_e4m3": 0.01, "fp8_e5m2": 0.01, "int8_c8": 0.05}  # int8_c8: fresh prefill


@pytest.fixture(scope="module")
def model(tiny_model: Callable[..., Path]) -> Path:
    return tiny_model(arch="qwen3", format="fp8_block")


def _forced(
    model: Path, stream: bool, texts: list[ForcedText], group_experts: int | None = None
) -> tuple[Simulation, object]:
    """``group_experts``: at most this many routed experts per group (None: the default)."""
    torch.set_num_threads(1)
    session = ReferenceSession(str(model), stream=stream)
    for experts in session.lm.experts.values():
        if group_experts is not None:
            experts.group_bytes = group_experts * experts.expert_bytes(0)
    return forced_simulation(session, model_shape(session), texts, _arms(session, FACTORS))


def _metrics(sim: Simulation) -> dict[str, object]:
    return {
        name: (
            run.logits.result(),
            [a.result() for a in run.per_step],
            run.tokens,
            run.nonfinite,
        )
        for name, run in sim.formats.items()
    }


@pytest.mark.slow
def test_streamed_equals_full_load_exactly_and_reads_each_layer_once(model: Path) -> None:
    texts = [ForcedText(p, list(range(40, 40 + STEPS))) for p in _prompts()]
    full, full_reads = _forced(model, False, texts)
    streamed, reads = _forced(model, True, texts)
    # the same calls in the same order on the same inputs: only when weights load differs
    assert _metrics(streamed) == _metrics(full)
    assert streamed.baseline == full.baseline
    assert streamed.scan.k_amax == full.scan.k_amax and streamed.scan.v_amax == full.scan.v_amax
    session = ReferenceSession(str(model), stream=True)
    lm = session.lm
    layers = sum(unit_bytes(lm, f"layer.{i}") for i in range(lm.num_layers))
    assert reads.passes == 1.0 and reads.layer_loads == lm.num_layers  # type: ignore[attr-defined]
    # every unit once (the input embeddings before the layers, the LM head after them); base
    # (the final norm) before and after them: a single pass keeps nothing loaded
    assert set(lm.units) == {"base", "embed", "head"} | {f"layer.{i}" for i in range(2)}
    every = sum(unit_bytes(lm, u) for u in lm.units)
    assert reads.bytes_read == every + unit_bytes(lm, "base")  # type: ignore[attr-defined]
    assert full_reads == full_load_reads(lm)
    files = sum(f.stat().st_size for f in model.glob("*.safetensors"))
    assert layers < every <= files


@pytest.mark.slow
def test_streamed_moe_reads_each_routed_expert_once_and_equals_full_load(
    tiny_model: Callable[..., Path],
) -> None:
    model = tiny_model(arch="qwen3_moe", format="fp8_block")
    texts = [ForcedText(p, list(range(40, 40 + STEPS))) for p in _prompts()]
    full, _ = _forced(model, False, texts)
    lm = ReferenceSession(str(model), stream=True).lm
    assert lm.experts  # streamed: routed experts read by group
    tensors = lm.weights.ckpt.tensors
    units = sum(unit_bytes(lm, u) for u in lm.units) + unit_bytes(lm, "base")
    experts = sum(tensors[n].nbytes for e in lm.experts.values() for n in e.tensor_names)
    read = {}
    for group in (8, 1):  # one group holds every expert; one expert per group
        streamed, reads = _forced(model, True, texts, group)
        assert _metrics(streamed) == _metrics(full)
        assert streamed.baseline == full.baseline
        assert streamed.scan.k_amax == full.scan.k_amax
        assert streamed.scan.v_amax == full.scan.v_amax
        read[group] = reads.bytes_read  # type: ignore[attr-defined]
    # one group: each routed expert read once, though the layer runs twice (prompts, then
    # continuations); one expert per group: the continuations' round reads its experts again
    assert units < read[8] <= units + experts < read[1]


@pytest.mark.slow
def test_forced_pass_equals_the_teacher_forced_part_of_the_full_measurement(model: Path) -> None:
    """Forced along the baseline's greedy continuation, the pass scores the same positions the
    full measurement's teacher-forced part scores, with the same simulated caches (the int8
    arm's prompt over fresh K/V, its continuation over the quantized cache). The two differ in
    batching (a left-padded batch with an explicit mask against one text with a causal
    prefill), so float32 logits differ by rounding: ~1e-9 absolute on KLs of ~1e-3 measured;
    1e-5 relative bounds it with room, and is far below any format's effect (the KLs differ
    between formats by more than 10%)."""
    torch.set_num_threads(1)
    session = ReferenceSession(str(model), stream=False)
    shape = model_shape(session)
    prompts = _prompts()
    encoded = [
        EncodedPrompt(prompt=Prompt(id=f"p{i}", text="x"), rendered="x", token_ids=t)
        for i, t in enumerate(prompts)
    ]
    full = simulate(session, shape, encoded, _arms(session, FACTORS), STEPS, workers=1)
    texts = [ForcedText(p, b) for p, b in zip(prompts, full.baseline, strict=True)]
    forced, _ = forced_simulation(session, shape, texts, _arms(session, FACTORS))
    # argmax along the baseline's own greedy text is the greedy text
    assert forced.baseline == full.baseline
    kls = []
    for name, run in forced.formats.items():
        ref = full.formats[name]
        got, want = run.logits.result(), ref.logits.result()
        assert got.positions == want.positions == len(prompts) * STEPS
        assert got.top1_agreement == want.top1_agreement
        assert got.kl_mean == pytest.approx(want.kl_mean, rel=1e-5)
        for a, b in zip(run.per_step, ref.per_step, strict=True):
            assert a.result().kl_mean == pytest.approx(b.result().kl_mean, rel=1e-5, abs=1e-12)
        kls.append(got.kl_mean)
    assert min(kls) > 0 and max(kls) > 1.1 * min(kls)  # the formats do move the logits
    # the scan sees the same K/V: the prompts and the fed continuation, baseline rows only
    for a, b in zip(forced.scan.k_amax, full.scan.k_amax, strict=True):
        assert a == pytest.approx(b, rel=1e-5)


@pytest.mark.slow
def test_calibration_in_the_pass_equals_the_calibration_prefill(model: Path) -> None:
    torch.set_num_threads(1)
    session = ReferenceSession(str(model), stream=True)
    shape = model_shape(session)
    prompts = _prompts()
    arms = _arms(session, {"fp8_e4m3": 1.0, "int8_c8": 1.0})
    calibration = Calibrating.of(arms, shape.num_layers)
    texts = [ForcedText(p, [50, 51, 52]) for p in prompts]
    forced_simulation(session, shape, texts, arms, calibration=calibration)
    assert calibration.acc.tokens == sum(LENGTHS)

    loaded = ReferenceSession(str(model), stream=False)
    encoded = [
        EncodedPrompt(prompt=Prompt(id=f"p{i}", text="x"), rendered="x", token_ids=t)
        for i, t in enumerate(prompts)
    ]
    want = calibrate(loaded, shape, encoded).result()
    for a in arms:
        expected = calibrated_scales(a.scales.format, want)
        for got, exp in zip(a.scales.layers, expected.layers, strict=True):
            torch.testing.assert_close(got.k, exp.k, rtol=1e-6, atol=0)
            torch.testing.assert_close(got.v, exp.v, rtol=1e-6, atol=0)


@pytest.mark.slow
def test_teacher_forced_run_reports_degeneration_as_not_measured(model: Path) -> None:
    from adaptgate.kvcache.api import run_kvcache
    from adaptgate.kvcache.models import KVCacheConfig

    cfg = KVCacheConfig(model=str(model), kv_dtypes=["fp8_e4m3", "int8_c8"], scales="calibrated",
                        mode="teacher-forced", stream=True, new_tokens=8, plot=False)  # fmt: skip
    result = run_kvcache(cfg)
    assert (result.settings.mode, result.settings.loading) == ("teacher-forced", "streamed")
    assert result.weights is not None and result.weights.passes == 1.0
    assert result.weights.peak_rss_bytes and result.weights.bytes_read > 0
    texts = len(result.prompts)
    for f in result.formats:
        assert f.not_measured == ["repetition_increase", "degenerated_share"]
        assert f.repetition_increase is None and f.degeneration == []
        assert f.verdict != "SAFE" and "not measured: repetition_increase" in f.reason.text
        assert f.logits.positions == 8 * texts and len(f.kl_per_step) == 8
        assert not any(c.metric == "repetition_increase" for c in f.checks)


def test_full_mode_refuses_streaming() -> None:
    from adaptgate.errors import UsageError
    from adaptgate.kvcache.api import run_kvcache
    from adaptgate.kvcache.models import KVCacheConfig

    with pytest.raises(UsageError, match="loaded in full"):
        run_kvcache(KVCacheConfig(model=str(Path(__file__).parent), mode="full", stream=True))


def test_split_prompts_forces_the_end_and_keeps_a_prompt() -> None:
    from adaptgate.errors import UsageError
    from adaptgate.kvcache.texts import split_prompts

    def enc(ids: list[int]) -> EncodedPrompt:
        return EncodedPrompt(prompt=Prompt(id="p", text="x"), rendered="x", token_ids=ids)

    long, short = split_prompts([enc(list(range(10))), enc([7, 8, 9])], 4)
    assert (long.prompt, long.continuation) == (list(range(6)), [6, 7, 8, 9])
    assert (short.prompt, short.continuation) == ([7], [8, 9])
    with pytest.raises(UsageError, match="nothing to force"):
        split_prompts([enc([1])], 4)


def test_unmeasured_metrics_cap_safe_unless_measured_elsewhere() -> None:
    from adaptgate.kvcache.verdict import cap_unmeasured

    unmeasured = ["repetition_increase"]
    assert cap_unmeasured("SAFE", unmeasured, measured_elsewhere=False) == "RISKY"
    assert cap_unmeasured("SAFE", unmeasured, measured_elsewhere=True) == "SAFE"
    assert cap_unmeasured("SAFE", [], measured_elsewhere=False) == "SAFE"
    assert cap_unmeasured("UNSAFE", unmeasured, measured_elsewhere=False) == "UNSAFE"
