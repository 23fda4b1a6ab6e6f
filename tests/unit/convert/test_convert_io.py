"""Positioned writes: O_DIRECT interiors with buffered edges give the same bytes as plain writes."""

from __future__ import annotations

import itertools

import numpy as np

from adaptgate.convert.io import ALIGN, BufferPool, ShardWriter


def test_direct_and_buffered_writes_agree(tmp_path):
    rng = np.random.default_rng(0)
    size = 9 * (1 << 20) + 123
    data = rng.integers(0, 256, size, dtype=np.uint8)
    cuts = sorted({0, size, *rng.integers(1, size, 5).tolist()})
    pool = BufferPool()
    outputs = {}
    for direct in (True, False):
        path = tmp_path / f"f{direct}.bin"
        writer = ShardWriter(path, size, direct=direct)
        for a, b in reversed(list(itertools.pairwise(cuts))):  # out of order, unaligned edges
            view = pool.get("out", b - a, phase=a)
            np.frombuffer(view, dtype=np.uint8)[:] = data[a:b]
            writer.write_at(a, view)
        writer.close()
        outputs[direct] = path.read_bytes()
    assert outputs[True] == outputs[False] == data.tobytes()


def test_pool_buffers_share_the_file_alignment():
    pool = BufferPool()
    for phase in (0, 1, 4095, 4096 * 3 + 17):
        view = pool.get("x", 5000, phase=phase)
        address = np.frombuffer(view, dtype=np.uint8).ctypes.data
        assert address % ALIGN == phase % ALIGN and len(view) == 5000


def test_crc32c_hardware_and_table_paths_agree_and_chain():
    import ctypes
    import zlib

    from adaptgate.formats.kernels import checksum
    from adaptgate.formats.kernels._cbuild import load_kernel

    lib = load_kernel()
    assert lib is not None
    assert checksum(b"123456789", algorithm="crc32c") == 0xE3069283  # the standard check value
    data = np.random.default_rng(1).integers(0, 256, 100_003, dtype=np.uint8).tobytes()
    whole = checksum(data, algorithm="crc32c")
    assert checksum(data[777:], checksum(data[:777], algorithm="crc32c"), "crc32c") == whole
    buf = ctypes.create_string_buffer(data, len(data))
    assert lib.adaptgate_crc32c_soft(0, ctypes.addressof(buf), len(data)) == whole
    assert checksum(data, algorithm="crc32") == zlib.crc32(data)
