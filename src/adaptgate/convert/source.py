"""Reading the source with direct I/O, and a content digest of every file from the same reads.

Each read goes through ``O_DIRECT`` where the file system allows it (on small VMs filling the
page cache costs more CPU than converting) into a page-aligned pool buffer. Every tensor's bytes
are hashed (sha256) by the worker that reads them, in order, as they pass; tensors no job reads
(scales, dropped tensors, shards kept from an earlier run) are read and hashed at the end. A
file's digest is ``sha256(sha256(header) || sha256(tensor) for each tensor in file order)`` --
the tensors tile the data section, so it covers every byte, and the source is read from disk once
without any worker waiting for another. :func:`file_digest` computes the same from a path.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from pathlib import Path
from typing import Any

from adaptgate.checkpoint import Checkpoint, read_safetensors_header
from adaptgate.convert.io import ALIGN, BufferPool, read_exact
from adaptgate.errors import CheckpointFormatError

DIGEST_ALGORITHM = "sha256-tensors"
_DIRECT_MIN = 1 << 20
_CHUNK = 16 << 20


def combine(header_sha: bytes, tensor_shas: list[bytes]) -> str:
    outer = hashlib.sha256(header_sha)
    for digest in tensor_shas:
        outer.update(digest)
    return outer.hexdigest()


def _hash_range(fd: int, begin: int, end: int) -> bytes:
    sha = hashlib.sha256()
    pos = begin
    while pos < end:
        data = os.pread(fd, min(_CHUNK, end - pos), pos)
        if not data:
            raise CheckpointFormatError(
                f"file ends at byte {pos}, inside a tensor", fix="re-download the shard"
            )
        sha.update(data)
        pos += len(data)
    return sha.digest()


def file_digest(path: Path) -> str:
    """The ``sha256-tensors`` digest of one safetensors file, computed from scratch."""
    header = read_safetensors_header(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        head = _hash_range(fd, 0, header.data_start)
        infos = sorted(header.tensors.values(), key=lambda i: i.data_offsets)
        parts = [
            _hash_range(
                fd, header.data_start + i.data_offsets[0], header.data_start + i.data_offsets[1]
            )
            for i in infos
        ]
    finally:
        os.close(fd)
    return combine(head, parts)


class Sources:
    """The source files, open for (direct) reading; per-tensor sha256 as tensors are read."""

    def __init__(self, ckpt: Checkpoint, *, digest: bool = True, direct: bool = True) -> None:
        self.ckpt = ckpt
        self.fds: dict[str, int] = {}
        self.direct_fds: dict[str, int] = {}
        self.digest = digest
        self.tensor_sha: dict[str, tuple[int, Any]] = {}  # name -> (bytes hashed, sha256)
        for rel in ckpt.weight_files:
            path = ckpt.root / rel
            self.fds[rel] = os.open(path, os.O_RDONLY)
            if direct and hasattr(os, "O_DIRECT"):
                with contextlib.suppress(OSError):  # e.g. tmpfs: buffered reads only
                    self.direct_fds[rel] = os.open(path, os.O_RDONLY | os.O_DIRECT)
        self.pool = BufferPool()

    def span(self, name: str, start: int) -> tuple[str, int]:
        info = self.ckpt.tensors[name]
        return info.file, self.ckpt.headers[info.file].data_start + info.data_offsets[0] + start

    def read(self, name: str, start: int, n: int, role: str = "in") -> memoryview:
        """Bytes ``start:start+n`` of tensor ``name``, in a per-thread buffer of ``role``."""
        file, begin = self.span(name, start)
        view = self._read(file, begin, n, role, f"{file}: tensor {name}")
        if self.digest:
            done, sha = self.tensor_sha.get(name, (0, None))
            if sha is None:
                sha = hashlib.sha256()
            if done == start:  # a job reads its tensor front to back
                sha.update(view)  # releases the GIL for more than 2 KiB
                self.tensor_sha[name] = (start + n, sha)
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
        """Every file's digest; tensors not (completely) read by a job are read now."""
        if not self.digest:
            return {}
        out = {}
        for rel in self.ckpt.weight_files:
            header = self.ckpt.headers[rel]
            fd = self.fds[rel]
            parts = []
            for info in sorted(header.tensors.values(), key=lambda i: i.data_offsets):
                done, sha = self.tensor_sha.get(info.name, (0, None))
                if sha is not None and done == info.nbytes:
                    parts.append(sha.digest())
                else:
                    a = header.data_start + info.data_offsets[0]
                    parts.append(_hash_range(fd, a, a + info.nbytes))
            out[rel] = combine(_hash_range(fd, 0, header.data_start), parts)
        return out

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
