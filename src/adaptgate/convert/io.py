"""Raw file I/O for streaming: positioned reads, positioned (direct) writes, reusable buffers.

Output shards are preallocated and every tensor is written at its planned offset with
``pwrite``, so workers write in any order. Where the file system allows it, the 4 KiB-aligned
interior of each write goes through a second descriptor opened with ``O_DIRECT`` (no page-cache
copy: on small VMs filling the page cache costs more CPU than the conversion itself); the
unaligned edges go through the ordinary descriptor. Both touch disjoint pages, which Linux keeps
coherent. Buffers come from per-thread pools of page-aligned anonymous memory, reused across
tensors and placed so that a tensor's file offset and its buffer share their 4 KiB alignment.
"""

from __future__ import annotations

import errno
import mmap
import os
import threading
from pathlib import Path

from adaptgate.errors import CheckpointFormatError, NoDiskSpace

ALIGN = 4096
_DIRECT_MIN = 1 << 20  # below this a direct write is not worth its alignment split


def read_exact(fd: int, offset: int, view: memoryview, label: str) -> None:
    """Fills ``view`` from ``fd`` at ``offset``; a short read means the file was truncated."""
    done = 0
    total = len(view)
    while done < total:
        got = os.preadv(fd, [view[done:]], offset + done)
        if got == 0:
            raise CheckpointFormatError(
                f"{label}: file ends after {offset + done} bytes, in the middle of a tensor "
                "(truncated or changed during conversion)",
                fix="re-download the shard and rerun; completed output shards are reused",
            )
        done += got


def _write_all(fd: int, view: memoryview, offset: int, path: Path) -> None:
    done = 0
    while done < len(view):
        try:
            done += os.pwrite(fd, view[done:], offset + done)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise NoDiskSpace(
                    f"the disk filled up while writing {path.name}",
                    fix="free space and rerun the same command: completed shards are reused",
                ) from None
            raise


class ShardWriter:
    """One output file, preallocated, written by offset from several threads."""

    def __init__(self, path: Path, size: int, *, direct: bool = True) -> None:
        self.path = path
        self.size = size
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self.direct_fd: int | None = None
        try:
            if hasattr(os, "posix_fallocate"):  # reserves the blocks: ENOSPC now, not midway
                os.posix_fallocate(self.fd, 0, max(size, 1))
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                os.close(self.fd)
                path.unlink(missing_ok=True)
                raise NoDiskSpace(
                    f"no room for {path.name} ({size / 1e9:.2f} GB)",
                    fix="free space and rerun: completed shards are reused",
                ) from None
        os.ftruncate(self.fd, size)
        if direct and hasattr(os, "O_DIRECT"):
            try:
                self.direct_fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
            except OSError:
                self.direct_fd = None

    def write_at(self, offset: int, data: memoryview) -> None:
        data = data.cast("B")
        n = len(data)
        if self.direct_fd is not None and n >= _DIRECT_MIN:
            head = -offset % ALIGN
            body = (n - head) // ALIGN * ALIGN
            addr_ok = _address(data[head:]) % ALIGN == 0
            if body > 0 and addr_ok:
                if head:
                    _write_all(self.fd, data[:head], offset, self.path)
                try:
                    _write_all(self.direct_fd, data[head : head + body], offset + head, self.path)
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    os.close(self.direct_fd)  # the file system refuses O_DIRECT after all
                    self.direct_fd = None
                    _write_all(self.fd, data[head : head + body], offset + head, self.path)
                if head + body < n:
                    _write_all(self.fd, data[head + body :], offset + head + body, self.path)
                return
        _write_all(self.fd, data, offset, self.path)

    def close(self, *, sync: bool = True) -> None:
        if sync:
            os.fsync(self.fd)
        if self.direct_fd is not None:
            os.close(self.direct_fd)
            self.direct_fd = None
        os.close(self.fd)


def _address(view: memoryview) -> int:
    import numpy as np

    if len(view) == 0 or view.readonly:
        return 1  # never aligned: read-only or empty buffers go through the page cache
    return int(np.frombuffer(view, dtype=np.uint8).ctypes.data)


class BufferPool:
    """Per-thread reusable page-aligned buffers, by role (``"in"``, ``"out"``, ...)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, role: str, nbytes: int, *, phase: int = 0) -> memoryview:
        """A writable buffer of ``nbytes`` whose address is ``phase`` mod 4096."""
        pools: dict[str, mmap.mmap] = self._local.__dict__.setdefault("pools", {})
        need = nbytes + ALIGN
        buf = pools.get(role)
        if buf is None or len(buf) < need:  # the old one is freed when its last view goes
            buf = pools[role] = mmap.mmap(-1, max(need, 1 << 20))
        start = phase % ALIGN
        return memoryview(buf)[start : start + nbytes]


def file_checksum(path: Path, begin: int, end: int, algorithm: str) -> int | None:
    """Checksum of bytes ``begin:end`` of ``path``; None if the file is shorter."""
    from adaptgate.formats.kernels import checksum

    crc, pos = 0, begin
    fd = os.open(path, os.O_RDONLY)
    try:
        while pos < end:
            data = os.pread(fd, min(32 << 20, end - pos), pos)
            if not data:
                return None
            crc = checksum(data, crc, algorithm)
            pos += len(data)
    finally:
        os.close(fd)
    return crc
