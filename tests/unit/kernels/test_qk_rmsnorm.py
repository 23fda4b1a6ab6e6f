"""qk_rmsnorm in Triton's interpreter against float64, on the shapes and tolerances of
qk_rmsnorm_cases.yaml; the unfused reference likewise; launch grid; errors; lazy Triton."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from adaptgate.errors import KernelUnavailable, UsageError
from adaptgate.kernels import qk_rmsnorm as qk_module
from adaptgate.kernels.qk_rmsnorm import (
    INTERPRETER_CORES,
    TILE_ELEMENTS,
    device_cores,
    launch_config,
    qk_rmsnorm,
    qk_rmsnorm_reference,
)

DATA = yaml.safe_load((Path(__file__).parent / "qk_rmsnorm_cases.yaml").read_text("utf-8"))
EPS = 1e-6


def _cases() -> list[dict[str, Any]]:
    cases = [dict(c) for c in DATA["cases"]]
    spec = DATA["random"]
    rng = random.Random(spec["seed"])
    for _ in range(spec["count"]):
        kv = rng.choice(spec["kv_heads"])
        cases.append(
            {
                "tokens": rng.choice(spec["tokens"]),
                "q_heads": kv * rng.choice(spec["gqa"]),
                "kv_heads": kv,
                "head_dim": rng.choice(spec["head_dim"]),
                "dtype": rng.choice(spec["dtype"]),
                "bias": rng.random() < 0.5,
                "programs": rng.choice(spec["programs"]),
            }
        )
    return cases


def _case_id(c: dict[str, Any]) -> str:
    bias = "+bias" if c["bias"] else ""
    return (
        f"T{c['tokens']}-q{c['q_heads']}kv{c['kv_heads']}-d{c['head_dim']}-{c['dtype']}{bias}"
        f"-p{c.get('programs', 'auto')}" + (f"-x{c['scale']:g}" if "scale" in c else "")
    )


CASES = _cases()


def _inputs(c: dict[str, Any], seed: int) -> dict[str, Any]:
    """Random qkv (rows of different magnitudes), weights around 1, biases around 0."""
    gen = torch.Generator().manual_seed(seed)
    dtype = getattr(torch, c["dtype"])
    hd, nq, nkv = c["head_dim"], c["q_heads"], c["kv_heads"]
    row_scale = torch.exp(torch.randn(c["tokens"], 1, generator=gen)) * c.get("scale", 1.0)
    qkv = torch.randn(c["tokens"], (nq + 2 * nkv) * hd, generator=gen) * row_scale
    out = {
        "qkv": qkv.to(dtype),
        "q_weight": (1 + 0.2 * torch.randn(hd, generator=gen)).to(dtype),
        "k_weight": (1 + 0.2 * torch.randn(hd, generator=gen)).to(dtype),
        "q_bias": None,
        "k_bias": None,
    }
    if c["bias"]:
        out["q_bias"] = (0.1 * torch.randn(hd, generator=gen)).to(dtype)
        out["k_bias"] = (0.1 * torch.randn(hd, generator=gen)).to(dtype)
    return out


def _f64(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.to(torch.float64).numpy()


def _expected(
    inp: dict[str, Any], c: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(q, k, q scale, k scale) in float64 with numpy, from the rounded inputs."""
    hd, nq, nkv = c["head_dim"], c["q_heads"], c["kv_heads"]
    x = _f64(inp["qkv"])
    assert x is not None
    tokens = x.shape[0]

    def norm(part: np.ndarray, heads: int, w: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
        h = part.reshape(tokens, heads, hd)
        normed = h / np.sqrt((h * h).mean(axis=-1, keepdims=True) + EPS) * w
        scale = np.abs(normed) + (0.0 if b is None else np.abs(b))
        y = normed + (0.0 if b is None else b)
        return y.reshape(tokens, heads * hd), scale.reshape(tokens, heads * hd)

    q, qs = norm(x[:, : nq * hd], nq, _f64(inp["q_weight"]), _f64(inp["q_bias"]))
    k, ks = norm(x[:, nq * hd : (nq + nkv) * hd], nkv, _f64(inp["k_weight"]), _f64(inp["k_bias"]))
    return q, k, qs, ks


def _check_close(
    name: str, got: torch.Tensor, want: np.ndarray, scale: np.ndarray, tol: dict[str, Any]
) -> None:
    g = got.to(torch.float64).numpy()
    assert g.shape == want.shape, name
    assert np.isfinite(g).all(), f"{name}: non-finite values (an element left unwritten?)"
    bound = tol["rtol"] * scale + tol["atol"]
    ratio = np.abs(g - want) / bound
    worst = np.unravel_index(int(ratio.argmax()), ratio.shape)
    assert ratio.max() <= 1.0, (
        f"{name}: |err| {abs(g[worst] - want[worst]):.3g} at {worst} exceeds "
        f"{tol['rtol']:g}*scale+{tol['atol']:g} = {bound[worst]:.3g} ({tol['why']})"
    )


def _poisoned_empty(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    return torch.full(shape, float("nan"), dtype=like.dtype, device=like.device)


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_kernel_matches_float64(
    case: dict[str, Any], triton_interpreter: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(qk_module, "_empty", _poisoned_empty)  # unwritten outputs stay NaN
    inp = _inputs(case, seed=len(_case_id(case)) * 7919 + case["tokens"])
    hd, nq, nkv = case["head_dim"], case["q_heads"], case["kv_heads"]
    q, k, v = qk_rmsnorm(
        inp["qkv"], inp["q_weight"], inp["k_weight"], nq * hd, nkv * hd, hd, EPS,
        q_bias=inp["q_bias"], k_bias=inp["k_bias"], num_programs=case.get("programs"),
    )  # fmt: skip
    want_q, want_k, q_scale, k_scale = _expected(inp, case)
    tol = DATA["tolerances"]["kernel"][case["dtype"]]
    assert q.dtype == k.dtype == v.dtype == inp["qkv"].dtype
    _check_close("q", q, want_q, q_scale, tol)
    _check_close("k", k, want_k, k_scale, tol)
    assert torch.equal(v, inp["qkv"][:, (nq + nkv) * hd :])  # v passes through bit for bit


@pytest.mark.parametrize("case", CASES[:9], ids=[_case_id(c) for c in CASES[:9]])
def test_reference_matches_float64(case: dict[str, Any]) -> None:
    inp = _inputs(case, seed=case["tokens"])
    hd, nq, nkv = case["head_dim"], case["q_heads"], case["kv_heads"]
    q, k, v = qk_rmsnorm_reference(
        inp["qkv"], inp["q_weight"], inp["k_weight"], nq * hd, nkv * hd, hd, EPS,
        q_bias=inp["q_bias"], k_bias=inp["k_bias"],
    )  # fmt: skip
    want_q, want_k, q_scale, k_scale = _expected(inp, case)
    tol = DATA["tolerances"]["reference"][case["dtype"]]
    _check_close("q", q, want_q, q_scale, tol)
    _check_close("k", k, want_k, k_scale, tol)
    assert torch.equal(v, inp["qkv"][:, (nq + nkv) * hd :])


def test_kernel_keeps_leading_dims_and_reads_strided_rows(triton_interpreter: None) -> None:
    """A [batch, seq, hidden] qkv, and a qkv that is a column slice of a wider tensor (row
    stride larger than its width), give the same result as the plain 2-D call."""
    c = {"tokens": 6, "q_heads": 4, "kv_heads": 2, "head_dim": 64, "dtype": "float32",
         "bias": True}  # fmt: skip
    inp = _inputs(c, seed=3)
    args = (inp["q_weight"], inp["k_weight"], 256, 128, 64, EPS)
    bias = {"q_bias": inp["q_bias"], "k_bias": inp["k_bias"]}
    q, k, v = qk_rmsnorm(inp["qkv"], *args, **bias, num_programs=3)
    q3, k3, v3 = qk_rmsnorm(inp["qkv"].view(2, 3, -1), *args, **bias, num_programs=3)
    assert q3.shape == (2, 3, 256) and k3.shape == (2, 3, 128) and v3.shape == (2, 3, 128)
    assert torch.equal(q3.reshape(6, -1), q) and torch.equal(k3.reshape(6, -1), k)
    wide = torch.cat([inp["qkv"], torch.randn(6, 40)], dim=1)[:, : inp["qkv"].shape[1]]
    assert not wide.is_contiguous()
    qs, ks, vs = qk_rmsnorm(wide, *args, **bias, num_programs=5)
    assert torch.equal(qs, q) and torch.equal(ks, k) and torch.equal(vs, v)


def test_zero_tokens(triton_interpreter: None) -> None:
    w = torch.ones(64)
    q, k, v = qk_rmsnorm(torch.empty(0, 256), w, w, 128, 64, 64, EPS)
    assert q.shape == (0, 128) and k.shape == (0, 64) and v.shape == (0, 64)


@pytest.mark.parametrize(
    ("tokens", "heads", "head_dim", "cores", "per_core", "want"),
    [
        (1, 9, 128, 40, 1, (1, 9)),  # decode: one token, one tile per head
        (8192, 9, 128, 40, 1, (16, 40)),  # prefill: full tiles, every core busy
        (8192, 9, 64, 132, 4, (32, 528)),  # GPU: 4 programs per SM
        (20, 5, 128, 7, 1, (16, 7)),  # 10 tiles for 7 programs: no need to shrink
        (20, 5, 128, 40, 1, (2, 40)),  # tiles shrink until all 40 programs have work
        (3, 2, 80, 16, 1, (1, 6)),  # fewer tiles than cores: one program per tile
    ],
)
def test_launch_config(
    tokens: int, heads: int, head_dim: int, cores: int, per_core: int, want: tuple[int, int]
) -> None:
    block_t, grid = launch_config(tokens, heads, head_dim, cores, per_core)
    assert (block_t, grid) == want
    assert block_t * max(64, head_dim) <= TILE_ELEMENTS


def test_device_cores_from_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """SMs on CUDA (as torch reports them); the interpreter's default on the CPU."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert device_cores(torch.device("cpu")) == INTERPRETER_CORES

    class Props:
        multi_processor_count = 132

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: Props())
    qk_module._hardware_cores.cache_clear()
    assert device_cores(torch.device("cuda", 0)) == 132
    qk_module._hardware_cores.cache_clear()
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert device_cores(torch.device("cuda", 0)) == INTERPRETER_CORES


def _bad_call(**change: Any) -> None:
    args: dict[str, Any] = {
        "qkv": torch.randn(2, 256), "q_weight": torch.ones(64), "k_weight": torch.ones(64),
        "q_hidden_size": 128, "kv_hidden_size": 64, "head_dim": 64, "eps": EPS,
    }  # fmt: skip
    args.update(change)
    qk_rmsnorm_reference(**args)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"qkv": torch.randn(2, 255)}, "last dimension is 255"),
        ({"q_hidden_size": 96}, "multiples of head_dim"),
        ({"q_weight": torch.ones(32)}, "q_weight has shape (32,)"),
        ({"q_bias": torch.zeros(64)}, "q_bias and k_bias go together"),
        ({"eps": 0.0}, "eps must be > 0"),
        ({"qkv": torch.randn(2, 256).to(torch.int32)}, "dtype torch.int32 is not supported"),
    ],
)
def test_bad_input_is_one_line_usage_error(change: dict[str, Any], needle: str) -> None:
    with pytest.raises(UsageError) as err:
        _bad_call(**change)
    text = err.value.one_line()
    assert needle in text and "-- fix:" in text and "\n" not in text
    assert err.value.exit_code == 2


def test_cpu_tensor_outside_the_interpreter_is_refused(
    triton_importable: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    w = torch.ones(64)
    with pytest.raises(KernelUnavailable, match="TRITON_INTERPRET=1"):
        qk_rmsnorm(torch.randn(2, 256), w, w, 128, 64, 64, EPS)


def test_package_imports_without_triton() -> None:
    """In a process where Triton is not importable (the vLLM CPU environment): the package and
    the plugin import, nothing imports triton, and the kernel says what is missing."""
    code = (
        "import sys, importlib.util, torch\n"
        "assert importlib.util.find_spec('triton') is None, 'triton is importable here'\n"
        "import adaptgate.kernels, adaptgate.kernels.qk_rmsnorm as m\n"
        "import adaptgate.kernels.vllm_plugin\n"
        "assert 'triton' not in sys.modules\n"
        "w = torch.ones(64)\n"
        "try:\n"
        "    m.qk_rmsnorm(torch.randn(2, 256), w, w, 128, 64, 64, 1e-6)\n"
        "except m.KernelUnavailable as e:\n"
        "    print('refused:', e)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "TRITON_INTERPRET"}}
    probe = subprocess.run(
        [sys.executable, "-c", "import importlib.util; print(importlib.util.find_spec('triton'))"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    if probe.stdout.strip() != "None":
        pytest.skip(f"{sys.executable} has triton installed; this test needs an env without it")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "refused: qk_rmsnorm needs Triton" in out.stdout
