"""Per-head q/k RMSNorm after ``qkv_proj`` as one Triton kernel, and the unfused torch path.

``qk_rmsnorm(qkv, q_weight, k_weight, q_hidden_size, kv_hidden_size, head_dim, eps, q_bias=None,
k_bias=None) -> (q, k, v)`` takes the fused projection ``qkv = [tokens, q_hidden + 2*kv_hidden]``
and returns q and k, each head normalized as ``x / sqrt(mean(x^2) + eps) * weight (+ bias)``,
and v as it came (a view of ``qkv``'s last ``kv_hidden`` columns, exactly what vLLM's unfused
``qkv.split`` hands to attention). One launch replaces the split, the two head views and the two
RMSNorm calls of Qwen3 / Qwen3-MoE attention.

The kernel reads each head's row once and accumulates in float32 whatever the input dtype
(bfloat16, float16 or float32), multiplies by the weight in float32 and rounds once to the input
dtype. Work is cut into tiles of ``BLOCK_T`` tokens x one head; a fixed number of programs --
derived from the device's core count (GPU SMs, NPU vector cores) -- walk the q tiles and then
the k tiles in a grid-stride loop, so any token count, head count and GQA ratio runs without a
size guard and without the head count having to divide the core count.

Triton is imported on first use only: this module (and the package) import without it. Under
``TRITON_INTERPRET=1`` the kernel runs in Triton's CPU interpreter on CPU tensors, which is how
the tests verify it on machines without an accelerator. ``qk_rmsnorm_reference`` is the unfused
torch path (vLLM's ``RMSNorm.forward_native`` arithmetic): the plugin's fallback and the
benchmark's baseline.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from adaptgate.errors import KernelUnavailable, UsageError

if TYPE_CHECKING:
    import torch

__all__ = [
    "OP_NAME",
    "device_cores",
    "interpreting",
    "launch_config",
    "qk_rmsnorm",
    "qk_rmsnorm_reference",
    "triton_available",
]

OP_NAME = "adaptgate::qk_rmsnorm"
DTYPES = ("bfloat16", "float16", "float32")
# Elements of one tile (BLOCK_T tokens x the head padded to a power of two): 2048 float32 values
# are 8 KiB, comfortably inside an NPU vector core's unified buffer and a GPU SM's registers.
TILE_ELEMENTS = 2048
# Programs per core: a GPU SM hides memory latency with several resident programs; Triton on
# Ascend runs one program per vector core at a time, so more only queue behind each other.
PROGRAMS_PER_CORE = {"cuda": 4, "npu": 1}
# Program count the interpreter uses when none is given (it runs programs one after another).
INTERPRETER_CORES = 4


def triton_available() -> bool:
    """Whether ``import triton`` would succeed (triton on GPUs, triton-ascend on NPUs)."""
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """Triton's CPU interpreter is on (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in {"1", "true", "yes", "on"}


def _next_pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def device_cores(device: torch.device) -> int:
    """The compute units a launch spreads over: SMs on CUDA, vector cores on Ascend NPUs (as
    triton-ascend's driver reports them), ``INTERPRETER_CORES`` in the interpreter."""
    if interpreting() or device.type == "cpu":
        return INTERPRETER_CORES
    return _hardware_cores(device.type, device.index)


@lru_cache(maxsize=16)
def _hardware_cores(device_type: str, index: int | None) -> int:
    import torch

    if device_type == "cuda":
        return int(torch.cuda.get_device_properties(index or 0).multi_processor_count)
    from triton.runtime import driver

    backend = getattr(torch, device_type, None)
    if index is None and backend is not None:
        index = backend.current_device()
    props: dict[str, Any] = driver.active.utils.get_device_properties(index or 0)
    for key in ("num_vectorcore", "multiprocessor_count", "num_aicore"):
        if props.get(key):
            return int(props[key])
    raise KernelUnavailable(
        f"qk_rmsnorm: the Triton driver for {device_type} reports no core count "
        f"(properties: {sorted(props)})",
        fix="pass num_programs= explicitly",
    )


def launch_config(
    tokens: int, heads: int, head_dim: int, cores: int, per_core: int = 1
) -> tuple[int, int]:
    """``(BLOCK_T, programs)``: the tile height and the grid. Tiles are as tall as
    ``TILE_ELEMENTS`` allows, halved while there are fewer tiles than programs to run them (so
    short batches still spread over the cores); the grid is at most ``cores * per_core`` and
    never more than the tiles."""
    block_d = _next_pow2(head_dim)
    block_t = min(max(1, TILE_ELEMENTS // block_d), _next_pow2(tokens))
    want = max(1, cores * per_core)
    while block_t > 1 and -(-tokens // block_t) * heads < want:
        block_t //= 2
    tiles = -(-tokens // block_t) * heads
    return block_t, max(1, min(want, tiles))


@lru_cache(maxsize=2)
def _kernel(interpret: bool) -> Any:
    """The ``@triton.jit`` kernel, built on first use (``triton.jit`` decides at decoration time
    whether it interprets, so each mode gets its own build)."""
    del interpret  # the cache key: TRITON_INTERPRET as it was when the kernel was built
    import triton
    import triton.language as tl

    @triton.jit
    def qk_rmsnorm_kernel(
        x_ptr,
        q_ptr,
        k_ptr,
        qw_ptr,
        kw_ptr,
        qb_ptr,
        kb_ptr,
        n_tokens,
        x_row_stride,
        eps,
        N_Q_HEADS: tl.constexpr,
        N_KV_HEADS: tl.constexpr,
        HEAD_DIM: tl.constexpr,
        BLOCK_D: tl.constexpr,
        BLOCK_T: tl.constexpr,
        HAS_BIAS: tl.constexpr,
    ):
        pid = tl.program_id(0)
        n_prog = tl.num_programs(0)
        n_tblocks = tl.cdiv(n_tokens, BLOCK_T)
        q_tiles = n_tblocks * N_Q_HEADS
        k_tiles = n_tblocks * N_KV_HEADS
        cols = tl.arange(0, BLOCK_D)
        col_ok = cols < HEAD_DIM
        rows_in_tile = tl.arange(0, BLOCK_T)

        # q tiles: combined tile index pid, pid + n_prog, ... below q_tiles
        w = tl.load(qw_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
        if HAS_BIAS:
            b = tl.load(qb_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
        for tile in range(pid, q_tiles, n_prog):
            head = tile % N_Q_HEADS
            rows = ((tile // N_Q_HEADS) * BLOCK_T + rows_in_tile).to(tl.int64)
            mask = (rows < n_tokens)[:, None] & col_ok[None, :]
            src = x_ptr + rows[:, None] * x_row_stride + head * HEAD_DIM + cols[None, :]
            x = tl.load(src, mask=mask, other=0.0).to(tl.float32)
            inv_rms = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) / HEAD_DIM + eps)
            y = x * inv_rms[:, None] * w[None, :]
            if HAS_BIAS:
                y = y + b[None, :]
            dst = q_ptr + rows[:, None] * (N_Q_HEADS * HEAD_DIM) + head * HEAD_DIM + cols[None, :]
            tl.store(dst, y.to(q_ptr.dtype.element_ty), mask=mask)

        # k tiles continue the same stride: combined index q_tiles + j with j = pid (mod n_prog)
        w = tl.load(kw_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
        if HAS_BIAS:
            b = tl.load(kb_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
        first = (pid + n_prog - q_tiles % n_prog) % n_prog
        for tile in range(first, k_tiles, n_prog):
            head = tile % N_KV_HEADS
            rows = ((tile // N_KV_HEADS) * BLOCK_T + rows_in_tile).to(tl.int64)
            mask = (rows < n_tokens)[:, None] & col_ok[None, :]
            offset = (N_Q_HEADS + head) * HEAD_DIM
            src = x_ptr + rows[:, None] * x_row_stride + offset + cols[None, :]
            x = tl.load(src, mask=mask, other=0.0).to(tl.float32)
            inv_rms = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) / HEAD_DIM + eps)
            y = x * inv_rms[:, None] * w[None, :]
            if HAS_BIAS:
                y = y + b[None, :]
            dst = k_ptr + rows[:, None] * (N_KV_HEADS * HEAD_DIM) + head * HEAD_DIM + cols[None, :]
            tl.store(dst, y.to(k_ptr.dtype.element_ty), mask=mask)

    return qk_rmsnorm_kernel


def _empty(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """Output allocation (one place, so tests can poison outputs to catch unwritten elements)."""
    import torch

    return torch.empty(shape, dtype=like.dtype, device=like.device)


def _launch(
    x: torch.Tensor,
    q_weight: torch.Tensor,
    k_weight: torch.Tensor,
    q_bias: torch.Tensor | None,
    k_bias: torch.Tensor | None,
    q_hidden_size: int,
    kv_hidden_size: int,
    head_dim: int,
    eps: float,
    num_programs: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the kernel on a 2-D ``x`` (unit column stride): new q and k tensors."""
    tokens = x.shape[0]
    q = _empty((tokens, q_hidden_size), x)
    k = _empty((tokens, kv_hidden_size), x)
    if tokens == 0:
        return q, k
    n_q, n_kv = q_hidden_size // head_dim, kv_hidden_size // head_dim
    per_core = PROGRAMS_PER_CORE.get(x.device.type, 1)
    cores = num_programs or device_cores(x.device)
    block_t, grid = launch_config(
        tokens, n_q + n_kv, head_dim, cores, 1 if num_programs else per_core
    )
    has_bias = q_bias is not None
    _kernel(interpreting())[(grid,)](
        x,
        q,
        k,
        q_weight,
        k_weight,
        q_bias if has_bias else q_weight,
        k_bias if has_bias else k_weight,
        tokens,
        x.stride(0),
        float(eps),
        N_Q_HEADS=n_q,
        N_KV_HEADS=n_kv,
        HEAD_DIM=head_dim,
        BLOCK_D=_next_pow2(head_dim),
        BLOCK_T=block_t,
        HAS_BIAS=has_bias,
    )
    return q, k


@lru_cache(maxsize=1)
def _custom_op() -> Any:
    """The kernel as the torch custom op ``adaptgate::qk_rmsnorm`` (q, k out): opaque to
    torch.compile / dynamo and capturable in CUDA / ACL graphs, with a fake (meta) version for
    tracing. Registered once per process, on first use."""
    import torch

    schema = (
        "(Tensor x, Tensor q_weight, Tensor k_weight, Tensor? q_bias, Tensor? k_bias, "
        "int q_hidden_size, int kv_hidden_size, int head_dim, float eps, int num_programs) "
        "-> (Tensor, Tensor)"
    )
    op = torch.library.custom_op(OP_NAME, _launch, mutates_args=(), schema=schema)

    def fake(
        x: torch.Tensor,
        q_weight: torch.Tensor,
        k_weight: torch.Tensor,
        q_bias: torch.Tensor | None,
        k_bias: torch.Tensor | None,
        q_hidden_size: int,
        kv_hidden_size: int,
        head_dim: int,
        eps: float,
        num_programs: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        del q_weight, k_weight, q_bias, k_bias, head_dim, eps, num_programs
        tokens = x.shape[0]
        return x.new_empty((tokens, q_hidden_size)), x.new_empty((tokens, kv_hidden_size))

    op.register_fake(fake)
    return op


def _check(
    qkv: torch.Tensor,
    q_weight: torch.Tensor,
    k_weight: torch.Tensor,
    q_hidden_size: int,
    kv_hidden_size: int,
    head_dim: int,
    eps: float,
    q_bias: torch.Tensor | None,
    k_bias: torch.Tensor | None,
    dtypes: tuple[str, ...] = DTYPES,
) -> None:
    """One-line errors for inputs the kernel cannot take, before anything runs."""
    where = "qk_rmsnorm"
    if head_dim <= 0 or q_hidden_size <= 0 or kv_hidden_size <= 0:
        raise UsageError(
            f"{where}: sizes must be positive (head_dim {head_dim}, q_hidden "
            f"{q_hidden_size}, kv_hidden {kv_hidden_size})",
            fix="pass the attention layer's q_size, kv_size and head_dim",
        )
    if q_hidden_size % head_dim or kv_hidden_size % head_dim:
        raise UsageError(
            f"{where}: q_hidden {q_hidden_size} and kv_hidden {kv_hidden_size} must be multiples "
            f"of head_dim {head_dim}",
            fix="pass the per-rank q_size and kv_size of the attention layer",
        )
    if qkv.dim() < 1 or qkv.shape[-1] != q_hidden_size + 2 * kv_hidden_size:
        raise UsageError(
            f"{where}: qkv's last dimension is {qkv.shape[-1] if qkv.dim() else 'missing'}, "
            f"expected q_hidden + 2*kv_hidden = {q_hidden_size + 2 * kv_hidden_size}",
            fix="pass qkv_proj's output [tokens, q_size + 2*kv_size] unsplit",
        )
    if str(qkv.dtype).removeprefix("torch.") not in dtypes:
        raise UsageError(
            f"{where}: dtype {qkv.dtype} is not supported", fix=f"use one of: {', '.join(dtypes)}"
        )
    if not eps > 0:
        raise UsageError(f"{where}: eps must be > 0, got {eps}", fix="pass the norm's epsilon")
    named = [("q_weight", q_weight), ("k_weight", k_weight), ("q_bias", q_bias)]
    named.append(("k_bias", k_bias))
    if (q_bias is None) != (k_bias is None):
        raise UsageError(
            f"{where}: q_bias and k_bias go together", fix="pass both biases or neither"
        )
    for name, t in named:
        if t is None:
            continue
        if tuple(t.shape) != (head_dim,):
            raise UsageError(
                f"{where}: {name} has shape {tuple(t.shape)}, expected ({head_dim},)",
                fix="pass the q_norm / k_norm parameters (one per head channel)",
            )
        if t.device != qkv.device:
            raise UsageError(
                f"{where}: {name} is on {t.device}, qkv on {qkv.device}",
                fix="keep the norm parameters on qkv's device",
            )


def qk_rmsnorm(
    qkv: torch.Tensor,
    q_weight: torch.Tensor,
    k_weight: torch.Tensor,
    q_hidden_size: int,
    kv_hidden_size: int,
    head_dim: int,
    eps: float,
    q_bias: torch.Tensor | None = None,
    k_bias: torch.Tensor | None = None,
    *,
    num_programs: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fused q/k RMSNorm (see the module docstring). ``qkv`` is ``[..., q_hidden +
    2*kv_hidden]``; q is ``[..., q_hidden]``, k and v ``[..., kv_hidden]``. ``num_programs``
    overrides the grid derived from the device's core count. Raises ``KernelUnavailable`` where
    the kernel cannot run (no Triton; a CPU tensor outside the interpreter)."""
    _check(qkv, q_weight, k_weight, q_hidden_size, kv_hidden_size, head_dim, eps, q_bias, k_bias)
    if not triton_available():
        raise KernelUnavailable(
            "qk_rmsnorm needs Triton, which is not importable here",
            fix="pip install triton (GPU) or triton-ascend (NPU); or use qk_rmsnorm_reference",
        )
    if qkv.device.type == "cpu" and not interpreting():
        raise KernelUnavailable(
            "qk_rmsnorm runs on a GPU/NPU tensor, or on the CPU only in Triton's interpreter",
            fix="set TRITON_INTERPRET=1 for the interpreter, or use qk_rmsnorm_reference",
        )
    if num_programs is not None and num_programs < 1:
        raise UsageError(
            f"qk_rmsnorm: num_programs must be >= 1, got {num_programs}",
            fix="leave it out to derive the grid from the device",
        )
    lead = tuple(qkv.shape[:-1])
    x = qkv.reshape(-1, qkv.shape[-1])
    if x.stride(-1) != 1:
        x = x.contiguous()
    q, k = _custom_op()(
        x,
        q_weight.contiguous(),
        k_weight.contiguous(),
        None if q_bias is None else q_bias.contiguous(),
        None if k_bias is None else k_bias.contiguous(),
        q_hidden_size,
        kv_hidden_size,
        head_dim,
        float(eps),
        num_programs or 0,
    )
    v = x[:, q_hidden_size + kv_hidden_size :]
    return (
        q.view(*lead, q_hidden_size),
        k.view(*lead, kv_hidden_size),
        v.reshape(*lead, kv_hidden_size),
    )


def qk_rmsnorm_reference(
    qkv: torch.Tensor,
    q_weight: torch.Tensor,
    k_weight: torch.Tensor,
    q_hidden_size: int,
    kv_hidden_size: int,
    head_dim: int,
    eps: float,
    q_bias: torch.Tensor | None = None,
    k_bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The unfused path, in torch: split, view per head, RMSNorm each of q and k the way vLLM's
    ``RMSNorm.forward_native`` does (float32 statistics, rounded to the input dtype, then times
    the weight in the weight's dtype), plus the bias where given. Same interface and outputs as
    ``qk_rmsnorm``; runs on any device, no Triton."""
    import torch

    _check(
        qkv,
        q_weight,
        k_weight,
        q_hidden_size,
        kv_hidden_size,
        head_dim,
        eps,
        q_bias,
        k_bias,
        dtypes=(*DTYPES, "float64"),
    )
    q, k, v = qkv.split([q_hidden_size, kv_hidden_size, kv_hidden_size], dim=-1)

    def norm(t: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        heads = t.reshape(*t.shape[:-1], t.shape[-1] // head_dim, head_dim)
        x = heads.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
        y = (x.to(weight.dtype) * weight).to(t.dtype)
        if bias is not None:
            y = y + bias.to(t.dtype)
        return y.reshape(t.shape)

    return norm(q, q_weight, q_bias), norm(k, k_weight, k_bias), v
