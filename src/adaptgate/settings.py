"""Every ``ADAPTGATE_*`` environment variable, read here and nowhere else.

``load_settings()`` reads the environment at call time (so a test's ``monkeypatch.setenv`` is
seen) and returns a typed :class:`Settings`; a bad value is a one-line :class:`UsageError` that
names the variable and its valid values. Empty counts as unset. The variables that change what a
run measures or produces (:data:`RUN_SHAPING`) are recorded in run.json (``RunSettings.env``), so
a resumed run in another environment is refused instead of silently differing.

This module imports only the standard library and ``adaptgate.errors``: the vLLM plugin reads
``ADAPTGATE_QK_RMSNORM`` through it inside the server process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from adaptgate.errors import UsageError

DEBUG = "ADAPTGATE_DEBUG"
CACHE_DIR = "ADAPTGATE_CACHE_DIR"
KERNEL = "ADAPTGATE_KERNEL"
CONVERT_TO = "ADAPTGATE_CONVERT_TO"
KVCACHE = "ADAPTGATE_KVCACHE"
VLLM_PYTHON = "ADAPTGATE_VLLM_PYTHON"
QK_RMSNORM = "ADAPTGATE_QK_RMSNORM"

# What a run measures or produces depends on these; ADAPTGATE_DEBUG and ADAPTGATE_CACHE_DIR
# change only how errors print and where a compiled kernel is kept.
RUN_SHAPING = (CONVERT_TO, KVCACHE, KERNEL, VLLM_PYTHON, QK_RMSNORM)

CONVERT_TARGETS = ("bf16", "fp16", "w8a8-dynamic")
KERNELS = ("auto", "numpy")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

Kernel = Literal["auto", "numpy"]
T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """The ``ADAPTGATE_*`` environment, parsed. Each field is one variable."""

    debug: bool = False
    """``ADAPTGATE_DEBUG`` (1/0, default 0): 1 prints the traceback under an error's one line."""

    cache_dir: Path | None = None
    """``ADAPTGATE_CACHE_DIR`` (a directory; default ``$XDG_CACHE_HOME/adaptgate`` or
    ``~/.cache/adaptgate``): where the conversion's C kernel is compiled to and cached."""

    kernel: Kernel = "auto"
    """``ADAPTGATE_KERNEL`` (auto/numpy, default auto): numpy forces conversion's numpy gather
    and zlib CRC-32 instead of the compiled C kernel and CRC-32C."""

    convert_to: str | None = None
    """``ADAPTGATE_CONVERT_TO`` (bf16, fp16, w8a8-dynamic, several comma-separated, ``+`` in front
    to convert after inspect's route; default: inspect's route): what ``adaptgate run`` converts
    to when ``--convert-to`` is not given."""

    kvcache: str | None = None
    """``ADAPTGATE_KVCACHE`` (1/all, or formats such as ``fp8_e4m3,int8_c8``; 0/auto/bf16: no;
    default: only when the checkpoint declares a quantized cache): the KV-cache formats
    ``adaptgate run``'s kvcache gate tests when ``--kv-formats`` is not given."""

    vllm_python: str | None = None
    """``ADAPTGATE_VLLM_PYTHON`` (a python executable; default: this interpreter): the python
    whose vLLM the serve and kvcache gates start, when ``--vllm-python`` is not given."""

    qk_rmsnorm: bool = False
    """``ADAPTGATE_QK_RMSNORM`` (1/0, default 0): in the vLLM server, adaptgate's plugin swaps the
    fused q/k RMSNorm kernel into Qwen3 / Qwen3-MoE attention. ``adaptgate plan`` sets it where
    the release has no fused q/k-norm of its own."""

    given: Mapping[str, str] = field(default_factory=dict, repr=False)
    """The ``ADAPTGATE_*`` variables that were set (not empty), as given."""

    def run_env(self) -> dict[str, str]:
        """The run-shaping variables that were set, for run.json."""
        return {name: self.given[name] for name in RUN_SHAPING if name in self.given}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings of ``environ`` (default: ``os.environ``, read now)."""
    env = os.environ if environ is None else environ
    given = {k: v.strip() for k, v in env.items() if k.startswith("ADAPTGATE_") and v.strip()}

    def read(name: str, parse: Callable[[str, str], T], default: T) -> T:
        return parse(name, given[name]) if name in given else default

    return Settings(
        debug=read(DEBUG, _flag, False),
        cache_dir=read(CACHE_DIR, lambda _, v: Path(v), None),
        kernel=read(KERNEL, _kernel, "auto"),
        convert_to=read(CONVERT_TO, parse_convert_to, None),
        kvcache=read(KVCACHE, lambda _, v: v, None),
        vllm_python=read(VLLM_PYTHON, lambda _, v: v, None),
        qk_rmsnorm=read(QK_RMSNORM, _flag, False),
        given=given,
    )


def parse_convert_to(source: str, text: str) -> str:
    """``bf16,w8a8-dynamic`` / ``+w8a8-dynamic`` checked against :data:`CONVERT_TARGETS`;
    ``source`` names where it came from (``--convert-to`` or ``ADAPTGATE_CONVERT_TO``)."""
    names = [t.strip() for t in text.lstrip("+").split(",") if t.strip()]
    if not all(t in CONVERT_TARGETS for t in names):
        raise UsageError(
            f"{source} {text}: unknown target",
            fix=f"use {', '.join(CONVERT_TARGETS)}, comma-separated",
        )
    return text


def _flag(name: str, text: str) -> bool:
    value = text.lower()
    if value not in _TRUE + _FALSE:
        raise UsageError(
            f"{name}={text!r} is not a valid value", fix=f"set {name} to 1 or 0 (or unset it)"
        )
    return value in _TRUE


def _kernel(name: str, text: str) -> Kernel:
    value = text.lower()
    if value not in KERNELS:
        raise UsageError(
            f"{name}={text!r} is not a valid value",
            fix=f"set {name} to one of: {', '.join(KERNELS)}",
        )
    return "numpy" if value == "numpy" else "auto"
