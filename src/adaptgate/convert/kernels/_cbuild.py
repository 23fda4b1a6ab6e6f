"""The C gather kernel: compiled on first use with the system C compiler, cached, via ctypes.

The library lands in ``$ADAPTGATE_CACHE_DIR`` (default ``$XDG_CACHE_HOME/adaptgate`` or
``~/.cache/adaptgate``) under a name that hashes the source and the compiler command, so a changed
kernel is rebuilt. A build is written to a temporary name and renamed, so concurrent processes
never load a half-written file. Any failure (no compiler, read-only cache) returns None and the
caller falls back to numpy. ctypes releases the GIL during the call, so worker threads run in
parallel.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

_SOURCE = r"""
#include <stdint.h>

/* out[r, c] = lut[((r / bn) * gc + c / bk) * 256 + codes[r, c]] */
#define GATHER(NAME, T)                                                                   \
void NAME(const uint8_t *codes, int64_t rows, int64_t cols, const T *lut,              \
          int64_t bn, int64_t bk, int64_t gc, T *out) {                                  \
    for (int64_t r = 0; r < rows; ++r) {                                                 \
        const uint8_t *src = codes + r * cols;                                           \
        T *dst = out + r * cols;                                                         \
        const T *row_lut = lut + (r / bn) * gc * 256;                                    \
        for (int64_t cb = 0; cb < gc; ++cb) {                                            \
            const T *t = row_lut + cb * 256;                                             \
            int64_t c0 = cb * bk, c1 = c0 + bk < cols ? c0 + bk : cols;                  \
            int64_t c = c0;                                                              \
            for (; c + 8 <= c1; c += 8) {                                                \
                dst[c] = t[src[c]];         dst[c + 1] = t[src[c + 1]];                  \
                dst[c + 2] = t[src[c + 2]]; dst[c + 3] = t[src[c + 3]];                  \
                dst[c + 4] = t[src[c + 4]]; dst[c + 5] = t[src[c + 5]];                  \
                dst[c + 6] = t[src[c + 6]]; dst[c + 7] = t[src[c + 7]];                  \
            }                                                                            \
            for (; c < c1; ++c) dst[c] = t[src[c]];                                      \
        }                                                                                \
    }                                                                                    \
}

GATHER(adaptgate_gather_lut_u16, uint16_t)
GATHER(adaptgate_gather_lut_u32, uint32_t)

/* how many of n codes have flags[code] set */
int64_t adaptgate_count_flags(const uint8_t *codes, int64_t n, const uint8_t *flags) {
    int64_t total = 0;
    for (int64_t i = 0; i < n; ++i) total += flags[codes[i]];
    return total;
}
"""
_FLAGS = ["-O3", "-shared", "-fPIC", "-std=c99"]
_lock = threading.Lock()


def cache_dir() -> Path:
    if env := os.environ.get("ADAPTGATE_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "adaptgate"


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def _build(cc: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / "gather.c"
        src.write_text(_SOURCE, encoding="ascii")
        built = Path(tmp) / target.name
        subprocess.run(
            [cc, *_FLAGS, "-o", str(built), str(src)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        built.replace(target)


@lru_cache(maxsize=1)
def load_kernel() -> ctypes.CDLL | None:
    """The compiled library, building it on first use; None when it cannot be had."""
    cc = _compiler()
    if cc is None:
        return None
    key = hashlib.sha256(
        "\0".join([_SOURCE, cc, *_FLAGS, platform.machine(), platform.system()]).encode()
    ).hexdigest()[:16]
    target = cache_dir() / f"gather-{key}.so"
    try:
        if not target.is_file():
            _build(cc, target)
        lib = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError):
        return None
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    for name in ("adaptgate_gather_lut_u16", "adaptgate_gather_lut_u32"):
        fn = getattr(lib, name)
        fn.argtypes = [ptr, i64, i64, ptr, i64, i64, i64, ptr]
        fn.restype = None
    lib.adaptgate_count_flags.argtypes = [ptr, i64, ptr]
    lib.adaptgate_count_flags.restype = i64
    return lib


def gather_lut_c(
    codes: np.ndarray, lut: np.ndarray, block: tuple[int, int], out: np.ndarray
) -> bool:
    """Runs the C gather; False when the kernel is unavailable (the caller falls back)."""
    with _lock:  # the first call may build; later calls only read the cache
        lib = load_kernel()
    if lib is None:
        return False
    fn = lib.adaptgate_gather_lut_u16 if lut.itemsize == 2 else lib.adaptgate_gather_lut_u32
    rows, cols = codes.shape
    fn(
        codes.ctypes.data,
        rows,
        cols,
        lut.ctypes.data,
        block[0],
        block[1],
        lut.shape[1],
        out.ctypes.data,
    )
    return True


def count_flags_c(codes: np.ndarray, flags: np.ndarray) -> int | None:
    """How many codes have their flag set; None when the kernel is unavailable."""
    with _lock:
        lib = load_kernel()
    if lib is None:
        return None
    return int(lib.adaptgate_count_flags(codes.ctypes.data, codes.size, flags.ctypes.data))
