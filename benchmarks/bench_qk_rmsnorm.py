"""How much faster is the fused qk_rmsnorm kernel than the unfused q/k norms it replaces?

For each token count (1 to 8192 by default) times, on the GPU or NPU:
- ``kernel``: ``adaptgate.kernels.qk_rmsnorm`` (one Triton launch);
- ``unfused``: ``qk_rmsnorm_reference`` -- split, per-head views and RMSNorm in torch ops (the
  arithmetic of vLLM's ``RMSNorm.forward_native``), the baseline measured in the same run;
- ``vllm``: where vLLM imports, its ``RMSNorm`` module called on the q and k head views, exactly
  what the unpatched Qwen3 attention forward does (the platform's own RMSNorm op: CUDA's
  rms_norm, vllm-ascend's npu_rms_norm).
and reports the largest error of the kernel's and the unfused path's q/k against float64. The
shape defaults to Qwen3-235B-A22B's attention per rank at TP=8 (8 q heads, 1 kv head, head_dim
128), bfloat16.

Without a GPU or NPU it says so and runs the kernel in Triton's CPU interpreter
(TRITON_INTERPRET=1; Triton from the environment or from make's ``.triton/``) for correctness
only: no timings are printed, since interpreter times say nothing about the kernel.

    python benchmarks/bench_qk_rmsnorm.py                       # GPU / NPU: the table
    python benchmarks/bench_qk_rmsnorm.py --tokens 1 64 8192 --dtype float16 --bias
    python benchmarks/bench_qk_rmsnorm.py --json results.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_TOKENS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
INTERPRETER_TOKENS = [1, 3, 16, 33, 128]
TRITON_DIR = Path(__file__).resolve().parents[1] / ".triton"


def pick_device(asked: str | None) -> str:
    import torch

    if asked:
        return asked
    if torch.cuda.is_available():
        return "cuda"
    if importlib.util.find_spec("torch_npu") is not None:
        import torch_npu  # noqa: F401  registers torch.npu

        if torch.npu.is_available():  # type: ignore[attr-defined]
            return "npu"
    return "cpu"


def synchronize(device: str) -> None:
    import torch

    backend = getattr(torch, device, None)
    if backend is not None and hasattr(backend, "synchronize"):
        backend.synchronize()


def time_call(fn: Callable[[], Any], device: str, repeat: int, inner: int) -> float:
    """Median over ``repeat`` runs of the mean time of ``inner`` back-to-back calls, seconds."""
    for _ in range(3):
        fn()
    synchronize(device)
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        synchronize(device)
        runs.append((time.perf_counter() - start) / inner)
    return statistics.median(runs)


def vllm_norms(head_dim: int, eps: float, q_w: Any, k_w: Any) -> tuple[Any, Any] | None:
    """vLLM's RMSNorm modules with the given weights, or None where vLLM does not import."""
    try:
        from vllm.config import VllmConfig, set_current_vllm_config
        from vllm.model_executor.layers.layernorm import RMSNorm
    except Exception:  # noqa: BLE001 -- any import failure: no vLLM column
        return None
    with set_current_vllm_config(VllmConfig()):
        q_norm = RMSNorm(head_dim, eps=eps, dtype=q_w.dtype).to(q_w.device)
        k_norm = RMSNorm(head_dim, eps=eps, dtype=k_w.dtype).to(k_w.device)
    q_norm.weight.data.copy_(q_w)
    k_norm.weight.data.copy_(k_w)
    return q_norm, k_norm


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    device = pick_device(args.device)
    interpret = device == "cpu"
    from adaptgate.kernels.qk_rmsnorm import device_cores, qk_rmsnorm, qk_rmsnorm_reference

    dtype = getattr(torch, args.dtype)
    hd, nq, nkv = args.head_dim, args.q_heads, args.kv_heads
    q_hidden, kv_hidden = nq * hd, nkv * hd
    gen = torch.Generator().manual_seed(0)
    q_w = (1 + 0.2 * torch.randn(hd, generator=gen)).to(dtype).to(device)
    k_w = (1 + 0.2 * torch.randn(hd, generator=gen)).to(dtype).to(device)
    bias = {}
    if args.bias:
        bias = {
            "q_bias": (0.1 * torch.randn(hd, generator=gen)).to(dtype).to(device),
            "k_bias": (0.1 * torch.randn(hd, generator=gen)).to(dtype).to(device),
        }
    norms = None if interpret or args.bias else vllm_norms(hd, args.eps, q_w, k_w)
    tokens_list = args.tokens or (INTERPRETER_TOKENS if interpret else DEFAULT_TOKENS)
    rows = []
    for tokens in tokens_list:
        qkv = torch.randn(tokens, q_hidden + 2 * kv_hidden, generator=gen).to(dtype).to(device)
        call = (qkv, q_w, k_w, q_hidden, kv_hidden, hd, args.eps)

        def kernel(call: tuple[Any, ...] = call) -> Any:
            return qk_rmsnorm(*call, **bias)

        def unfused(call: tuple[Any, ...] = call) -> Any:
            return qk_rmsnorm_reference(*call, **bias)

        f64 = {name: t.double() for name, t in bias.items()}
        exact = qk_rmsnorm_reference(
            qkv.double(), q_w.double(), k_w.double(), q_hidden, kv_hidden, hd, args.eps, **f64
        )
        row: dict[str, Any] = {"tokens": tokens}
        for name, fn in (("kernel", kernel), ("unfused", unfused)):
            q, k, _ = fn()
            row[f"{name}_max_err"] = max(
                (q.double() - exact[0]).abs().max().item(),
                (k.double() - exact[1]).abs().max().item(),
            )
        if not interpret:
            row["kernel_s"] = time_call(kernel, device, args.repeat, args.inner)
            row["unfused_s"] = time_call(unfused, device, args.repeat, args.inner)
            if norms is not None:
                q_norm, k_norm = norms

                def vllm(qkv: Any = qkv, q_norm: Any = q_norm, k_norm: Any = k_norm) -> Any:
                    qq, kk, _ = qkv.split([q_hidden, kv_hidden, kv_hidden], dim=-1)
                    qq = q_norm(qq.unflatten(-1, (nq, hd))).flatten(-2)
                    kk = k_norm(kk.unflatten(-1, (nkv, hd))).flatten(-2)
                    return qq, kk

                row["vllm_s"] = time_call(vllm, device, args.repeat, args.inner)
        rows.append(row)
    return {
        "device": device,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else device,
        "cores": device_cores(torch.device(device)),
        "interpreter": interpret,
        "shape": {"q_heads": nq, "kv_heads": nkv, "head_dim": hd, "dtype": args.dtype},
        "bias": args.bias,
        "rows": rows,
    }


def print_table(result: dict[str, Any]) -> None:
    shape = result["shape"]
    print(
        f"qk_rmsnorm on {result['device_name']} ({result['cores']} cores): "
        f"{shape['q_heads']} q / {shape['kv_heads']} kv heads, head_dim {shape['head_dim']}, "
        f"{shape['dtype']}{', bias' if result['bias'] else ''}"
    )
    if result["interpreter"]:
        print("no GPU/NPU: the kernel ran in Triton's CPU interpreter for correctness only")
        if shape["dtype"] == "bfloat16":
            print(
                "(the interpreter truncates float32 -> bfloat16 where hardware rounds to nearest:"
            )
            print(" its bf16 error is up to one ulp here, half an ulp on a device)")
        print(f"{'tokens':>7} {'kernel max err':>15} {'unfused max err':>16}  (vs float64)")
        for r in result["rows"]:
            print(f"{r['tokens']:>7} {r['kernel_max_err']:>15.3g} {r['unfused_max_err']:>16.3g}")
        return
    has_vllm = any("vllm_s" in r for r in result["rows"])
    head = f"{'tokens':>7} {'kernel us':>10} {'unfused us':>11} {'ratio':>7}"
    head += f" {'vllm us':>9} {'ratio':>7}" if has_vllm else ""
    print(head + f" {'kernel err':>11} {'unfused err':>12}")
    for r in result["rows"]:
        line = f"{r['tokens']:>7} {r['kernel_s'] * 1e6:>10.1f} {r['unfused_s'] * 1e6:>11.1f}"
        line += f" {r['unfused_s'] / r['kernel_s']:>6.2f}x"
        if has_vllm:
            line += f" {r['vllm_s'] * 1e6:>9.1f} {r['vllm_s'] / r['kernel_s']:>6.2f}x"
        print(line + f" {r['kernel_max_err']:>11.3g} {r['unfused_max_err']:>12.3g}")
    print(
        "ratio = baseline time / kernel time (> 1: the kernel is faster); err = max |x - float64|"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, nargs="+", help="token counts (default 1..8192)")
    parser.add_argument("--q-heads", type=int, default=8)
    parser.add_argument("--kv-heads", type=int, default=1)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default="bfloat16")
    parser.add_argument("--bias", action="store_true", help="q/k norm biases (W8A8 anti-outlier)")
    parser.add_argument("--eps", type=float, default=1e-6)
    parser.add_argument("--device", help="cuda, npu or cpu (default: what is present)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs (median)")
    parser.add_argument("--inner", type=int, default=50, help="calls per timed run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if pick_device(args.device) == "cpu":
        # the interpreter must be on before Triton is first imported (triton.jit decides then)
        os.environ["TRITON_INTERPRET"] = "1"
        if importlib.util.find_spec("triton") is None and TRITON_DIR.is_dir():
            sys.path.insert(0, str(TRITON_DIR))
        if importlib.util.find_spec("triton") is None:
            sys.exit("no GPU/NPU and no Triton for the interpreter: run `make setup` (.triton/)")
    result = run(args)
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
