"""The hot loops of conversion: a per-block lookup-table gather, and CRC-32C checksums.

Dequantizing an FP8 block is ``out[r, c] = lut[r // bn, c // bk][code[r, c]]`` where each block's
256-entry table was computed by torch as ``float32(fp8 value) * float32(scale)`` rounded once to
the target type. The tables carry all the arithmetic, so any gather is bit-identical to torch's
own float32 dequantization. A small C kernel (compiled on first use with the system C compiler,
cached) does the gather; without a compiler a numpy version does the same, more slowly.
``ADAPTGATE_KERNEL=numpy`` forces the numpy path. Checksums of written tensors are CRC-32C
(SSE4.2 instruction where available) with the kernel, zlib's CRC-32 without it; the algorithm
is recorded next to every checksum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adaptgate.formats.kernels._numpy import gather_lut_numpy
from adaptgate.settings import load_settings

if TYPE_CHECKING:
    import numpy as np

__all__ = ["checksum", "checksum_algorithm", "count_codes", "gather_lut", "kernel_name"]


def _use_c() -> bool:
    return load_settings().kernel != "numpy"


def kernel_name() -> str:
    """``"c"`` when the compiled kernel is in use, else ``"numpy"``."""
    if _use_c():
        from adaptgate.formats.kernels._cbuild import load_kernel

        if load_kernel() is not None:
            return "c"
    return "numpy"


def gather_lut(codes: np.ndarray, lut: np.ndarray, block: tuple[int, int], out: np.ndarray) -> None:
    """``out[r, c] = lut[r // bn, c // bk, codes[r, c]]``.

    ``codes``: uint8 ``[rows, cols]`` (C-contiguous); ``lut``: ``[ceil(rows/bn), ceil(cols/bk),
    256]`` of a 2- or 4-byte type; ``out``: ``[rows, cols]`` of the lut's type, C-contiguous.
    """
    _check(codes, lut, block, out)
    if _use_c():
        from adaptgate.formats.kernels._cbuild import gather_lut_c

        if gather_lut_c(codes, lut, block, out):
            return
    gather_lut_numpy(codes, lut, block, out)


def checksum_algorithm() -> str:
    """``"crc32c"`` (hardware-assisted, in the C kernel) or, without the kernel, ``"crc32"``."""
    return "crc32c" if kernel_name() == "c" else "crc32"


def checksum(data: memoryview | bytes, crc: int = 0, algorithm: str | None = None) -> int:
    """Chainable checksum of ``data`` (``checksum(b, checksum(a)) == checksum(a + b)``)."""
    algorithm = algorithm or checksum_algorithm()
    if algorithm == "crc32":
        import zlib

        return zlib.crc32(data, crc)
    if algorithm != "crc32c":
        raise ValueError(f"unknown checksum {algorithm!r}")
    from adaptgate.formats.kernels._cbuild import crc32c_c

    value = crc32c_c(data, crc)
    if value is None:
        raise RuntimeError("crc32c needs the compiled kernel, which is unavailable here")
    return value


def count_codes(codes: np.ndarray, flags: np.ndarray) -> int:
    """How many ``codes`` (C-contiguous uint8) have ``flags[code]`` set (``flags``: 256 bools)."""
    import numpy as np

    if not codes.flags.c_contiguous or codes.dtype != np.uint8:
        raise ValueError("codes must be a C-contiguous uint8 array")
    table = np.ascontiguousarray(flags, dtype=np.uint8)
    if table.shape != (256,):
        raise ValueError("flags must have 256 entries")
    if not table.any():
        return 0
    if _use_c():
        from adaptgate.formats.kernels._cbuild import count_flags_c

        counted = count_flags_c(codes, table)
        if counted is not None:
            return counted
    return sum(int(np.count_nonzero(codes == c)) for c in np.flatnonzero(table))


def _check(codes: np.ndarray, lut: np.ndarray, block: tuple[int, int], out: np.ndarray) -> None:
    import numpy as np

    from adaptgate.formats.dequantize import ceil_div  # dequantize imports this module

    rows, cols = codes.shape
    bn, bk = block
    grid = (ceil_div(rows, bn), ceil_div(cols, bk), 256)
    if codes.dtype != np.uint8 or not codes.flags.c_contiguous:
        raise ValueError("codes must be a C-contiguous uint8 array")
    if lut.shape != grid or not lut.flags.c_contiguous or lut.itemsize not in (2, 4):
        raise ValueError(f"lut must be C-contiguous {grid} of 2- or 4-byte items, got {lut.shape}")
    if out.shape != codes.shape or out.dtype != lut.dtype or not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous, shaped like codes, typed like lut")
