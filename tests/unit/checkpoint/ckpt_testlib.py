"""Helpers shared by the checkpoint tests (a unique module name: tests have no __init__.py)."""

from __future__ import annotations

import json
import struct
from typing import Any

from adaptgate.errors import AdaptgateError


def raw_safetensors(header: Any, data: bytes = b"", *, header_bytes: bytes | None = None) -> bytes:
    """A safetensors file from a header object (or raw header bytes) and a data section."""
    hb = header_bytes if header_bytes is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(hb)) + hb + data


def assert_one_line(exc: AdaptgateError, *needles: str) -> None:
    """The CLI prints str(exc): it must be one line, carry a fix and name what is wrong."""
    text = str(exc)
    assert "\n" not in text, text
    assert exc.fix, f"no fix in: {text}"
    for needle in needles:
        assert needle in text, f"{needle!r} not in: {text}"
