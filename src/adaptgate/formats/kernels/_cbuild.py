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

/* CRC-32C (Castagnoli), chainable like zlib's crc32: crc32c(crc32c(0, a), b) == crc32c(0, ab).
   SSE4.2 instruction on x86-64 when the CPU has it, else slicing-by-8 tables. */
static uint32_t crc_table[8][256];
static int crc_ready = 0;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; ++i) {
        uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
        for (int j = 1; j < 8; ++j)
            crc_table[j][i] = (crc_table[j - 1][i] >> 8) ^ crc_table[0][crc_table[j - 1][i] & 0xFF];
    crc_ready = 1;
}

static uint32_t crc_soft(uint32_t c, const uint8_t *p, int64_t n) {
    while (n >= 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8
                           | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8
                    | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        c = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF]
          ^ crc_table[5][(lo >> 16) & 0xFF] ^ crc_table[4][lo >> 24]
          ^ crc_table[3][hi & 0xFF] ^ crc_table[2][(hi >> 8) & 0xFF]
          ^ crc_table[1][(hi >> 16) & 0xFF] ^ crc_table[0][hi >> 24];
        p += 8; n -= 8;
    }
    while (n--) c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xFF];
    return c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#include <string.h>
__attribute__((target("sse4.2")))
static uint32_t crc_hard(uint32_t c32, const uint8_t *p, int64_t n) {
    uint64_t c = c32;
    while (n > 0 && ((uintptr_t)p & 7)) { c = _mm_crc32_u8((uint32_t)c, *p++); --n; }
    while (n >= 8) { uint64_t w; memcpy(&w, p, 8); c = _mm_crc32_u64(c, w); p += 8; n -= 8; }
    while (n-- > 0) c = _mm_crc32_u8((uint32_t)c, *p++);
    return (uint32_t)c;
}
static int crc_has_hard(void) { return __builtin_cpu_supports("sse4.2"); }
#else
static uint32_t crc_hard(uint32_t c, const uint8_t *p, int64_t n) { return crc_soft(c, p, n); }
static int crc_has_hard(void) { return 0; }
#endif

uint32_t adaptgate_crc32c(uint32_t crc, const uint8_t *p, int64_t n) {
    static int hard = -1;
    if (!crc_ready) crc_init();
    if (hard < 0) hard = crc_has_hard();
    uint32_t c = ~crc;
    c = hard ? crc_hard(c, p, n) : crc_soft(c, p, n);
    return ~c;
}

uint32_t adaptgate_crc32c_soft(uint32_t crc, const uint8_t *p, int64_t n) {  /* for tests */
    if (!crc_ready) crc_init();
    return ~crc_soft(~crc, p, n);
}

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
    from adaptgate.settings import load_settings

    if (configured := load_settings().cache_dir) is not None:
        return configured
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
    for name in ("adaptgate_crc32c", "adaptgate_crc32c_soft"):
        getattr(lib, name).argtypes = [ctypes.c_uint32, ptr, i64]
        getattr(lib, name).restype = ctypes.c_uint32
    lib.adaptgate_crc32c(0, None, 0)  # builds the tables once, before threads share them
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


def crc32c_c(data: memoryview | bytes, crc: int = 0) -> int | None:
    """CRC-32C of ``data`` continuing from ``crc``; None when the kernel is unavailable."""
    import numpy as np

    with _lock:
        lib = load_kernel()
    if lib is None:
        return None
    n = len(data) if isinstance(data, bytes) else data.nbytes
    if n == 0:
        return crc
    address = np.frombuffer(data, dtype=np.uint8).ctypes.data
    return int(lib.adaptgate_crc32c(crc, address, n))
