"""Reading the source: direct I/O, and each file's sha256 computed from the same reads.

Jobs run in source-file order, so together the workers read every file front to back. Each read
goes through ``O_DIRECT`` where the file system allows it (on small VMs filling the page cache
costs more CPU than converting), into a page-aligned pool buffer. The sha256 of every file is
computed from those same bytes: a worker that has read bytes ``[a, b)`` waits until the file's
digest has reached ``a``, adds its bytes and moves it to ``b``. Bytes no job reads (the header,
scales, dropped tensors, shards kept from an earlier run) are read and added by whichever worker
reaches them first. So the source is read from disk once, and hashing costs no extra I/O.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import hashlib
import os
import threading
from pathlib import Path

from adaptgate.checkpoint import Checkpoint
from adaptgate.convert.io import ALIGN, BufferPool, read_exact
from adaptgate.errors import CheckpointFormatError

_DIRECT_MIN = 1 << 20
_GAP_CHUNK = 16 << 20


class Aborted(RuntimeError):
    """Another worker failed; this one stops waiting."""


class _FileDigest:
    """The sha256 of one file, fed in order by the threads that read it."""

    def __init__(self, path: Path, fd: int, owned: list[tuple[int, int]], size: int) -> None:
        self.path, self.fd, self.size = path, fd, size
        self.starts = [a for a, _ in owned]
        self.owned = owned
        self.pos = 0
        self.sha = hashlib.sha256()
        self.cond = threading.Condition()
        self.aborted = False

    def _owned_at(self, pos: int) -> tuple[int, int] | None:
        """The owned range starting at or covering ``pos``, else None."""
        i = bisect.bisect_right(self.starts, pos) - 1
        if i >= 0 and self.owned[i][0] <= pos < self.owned[i][1]:
            return self.owned[i]
        return None

    def _fill_gap(self, limit: int) -> None:
        """Hashes unowned bytes from ``pos`` up to the next owned range (or ``limit``)."""
        i = bisect.bisect_right(self.starts, self.pos)
        end = min(limit, self.starts[i] if i < len(self.starts) else self.size)
        while self.pos < end:
            data = os.pread(self.fd, min(_GAP_CHUNK, end - self.pos), self.pos)
            if not data:
                raise CheckpointFormatError(
                    f"{self.path.name}: file ends at {self.pos} bytes while being hashed",
                    fix="re-download the shard and rerun",
                )
            self.sha.update(data)
            self.pos += len(data)

    def feed(self, begin: int, data: memoryview) -> None:
        with self.cond:
            while self.pos < begin:
                if self.aborted:
                    raise Aborted("stopped: another worker failed")
                if self._owned_at(self.pos) is None:
                    self._fill_gap(begin)
                    continue
                self.cond.wait(timeout=1.0)
            if self.pos == begin:
                self.sha.update(data)  # sha256 of > 2 KiB releases the GIL
                self.pos = begin + len(data)
                self.cond.notify_all()

    def finish(self) -> str:
        with self.cond:
            self._fill_gap(self.size)
            return self.sha.hexdigest()

    def abort(self) -> None:
        with self.cond:
            self.aborted = True
            self.cond.notify_all()


class Sources:
    """The source files, open for (direct) reading, with optional in-order sha256."""

    def __init__(
        self,
        ckpt: Checkpoint,
        reads: dict[str, list[tuple[int, int]]] | None,
        *,
        direct: bool = True,
    ) -> None:
        """``reads``: per file, the absolute byte ranges the jobs will read (for hashing);
        None: no hashing."""
        self.ckpt = ckpt
        self.fds: dict[str, int] = {}
        self.direct_fds: dict[str, int] = {}
        self.digests: dict[str, _FileDigest] = {}
        for rel in ckpt.weight_files:
            path = ckpt.root / rel
            self.fds[rel] = os.open(path, os.O_RDONLY)
            if direct and hasattr(os, "O_DIRECT"):
                with contextlib.suppress(OSError):  # e.g. tmpfs: buffered reads only
                    self.direct_fds[rel] = os.open(path, os.O_RDONLY | os.O_DIRECT)
            if reads is not None:
                owned = sorted(reads.get(rel, []))
                size = ckpt.headers[rel].file_size
                self.digests[rel] = _FileDigest(path, self.fds[rel], owned, size)
        self.pool = BufferPool()

    def span(self, name: str, start: int) -> tuple[str, int]:
        info = self.ckpt.tensors[name]
        return info.file, self.ckpt.headers[info.file].data_start + info.data_offsets[0] + start

    def read(self, name: str, start: int, n: int, role: str = "in") -> memoryview:
        """Bytes ``start:start+n`` of tensor ``name``, in a per-thread buffer of ``role``."""
        file, begin = self.span(name, start)
        view = self._read(file, begin, n, role, f"{file}: tensor {name}")
        digest = self.digests.get(file)
        if digest is not None:
            digest.feed(begin, view)
        return view

    def _read(self, file: str, begin: int, n: int, role: str, label: str) -> memoryview:
        fd = self.direct_fds.get(file)
        if fd is not None and n >= _DIRECT_MIN:
            a = begin // ALIGN * ALIGN
            b = -(-(begin + n) // ALIGN) * ALIGN
            buf = self.pool.get(role, b - a, phase=0)
            try:
                got = _read_direct(fd, a, buf, begin + n - a)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self.direct_fds.pop(file, None)  # the file system refuses O_DIRECT after all
                os.close(fd)
            else:
                if got < begin + n - a:
                    raise CheckpointFormatError(
                        f"{label}: file ends in the middle of the tensor (truncated or changed "
                        "during conversion)",
                        fix="re-download the shard and rerun; completed output shards are reused",
                    )
                return buf[begin - a : begin - a + n]
        view = self.pool.get(role, n)
        read_exact(self.fds[file], begin, view, label)
        return view

    def hashes(self) -> dict[str, str]:
        return {rel: d.finish() for rel, d in self.digests.items()}

    def abort(self) -> None:
        for d in self.digests.values():
            d.abort()

    def close(self) -> None:
        for fd in [*self.fds.values(), *self.direct_fds.values()]:
            os.close(fd)
        self.fds.clear()
        self.direct_fds.clear()


def _read_direct(fd: int, offset: int, buf: memoryview, need: int) -> int:
    """Reads aligned blocks from ``offset`` until ``need`` bytes are in (or end of file)."""
    done = 0
    while done < need:
        got = os.preadv(fd, [buf[done:]], offset + done)
        if got == 0:
            break
        done += got
        if got % ALIGN:  # a short, unaligned read only happens at the end of the file
            break
    return done
