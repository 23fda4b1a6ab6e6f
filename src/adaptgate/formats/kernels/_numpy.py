"""The numpy gather: per band of row blocks, one index array and one ``np.take``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

_TARGET_ELEMENTS = 1 << 20  # ~1 M elements per band keeps the temporaries small


def gather_lut_numpy(
    codes: np.ndarray, lut: np.ndarray, block: tuple[int, int], out: np.ndarray
) -> None:
    import numpy as np

    rows, cols = codes.shape
    if rows == 0 or cols == 0:
        return
    bn, bk = block
    gr, gc, _ = lut.shape
    blocks_per_band = max(1, _TARGET_ELEMENTS // max(1, bn * cols))
    band_rows = min(rows, blocks_per_band * bn)
    # offset of each element's table inside a band's slice of ``lut``, the same for every band
    row_base = (np.arange(band_rows, dtype=np.int64) // bn) * (gc * 256)
    col_base = (np.arange(cols, dtype=np.int64) // bk) * 256
    base = (row_base[:, None] + col_base[None, :]).astype(np.int32)
    idx = np.empty((band_rows, cols), dtype=np.int32)
    for b0 in range(0, gr, blocks_per_band):
        b1 = min(gr, b0 + blocks_per_band)
        r0, r1 = b0 * bn, min(rows, b1 * bn)
        n = r1 - r0
        np.add(codes[r0:r1], base[:n], out=idx[:n])
        np.take(lut[b0:b1].reshape(-1), idx[:n], out=out[r0:r1])
