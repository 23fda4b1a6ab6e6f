"""What vLLM reports about itself in its startup log: KV-cache capacity, concurrency,
weight-loading and engine-init times, the vLLM (and vllm-ascend) version, the platform, and the
launch arguments (``non-default args: {...}``) with the engine's effective config.

Formats, each seen in real logs: vLLM >= 0.17 prints a banner ``█ ... version 0.32.0`` and
``non-default args: {'max_model_len': 4096, ...}`` (tests/data/logs/clean_startup.log, vLLM CPU
0.32.0); older releases print ``vLLM API server version 0.11.0rc3`` (vllm-project/vllm-ascend
#4074). vllm-ascend logs ``Platform plugin ascend is activated`` but not its own version; that
comes from what the launch script printed before the server (``pip list`` lines, or
vllm-ascend's ``collect_env.py``: ``vLLM Ascend Version: ...``), when the log has it."""

from __future__ import annotations

import ast
import re
from typing import Any

from pydantic import BaseModel, Field

# vLLM >= 0.11: "GPU KV cache size: 1,048,576 tokens" (the device name varies: GPU, CPU, NPU,
# "CPU + host"), then "Maximum concurrency for 4,096 tokens per request: 256.00x".
_KV = re.compile(r"(?P<dev>[A-Za-z]+(?: \+ host)?) KV cache size: (?P<tokens>[\d,]+) tokens")
_CONC = re.compile(r"Maximum concurrency for (?P<len>[\d,]+) tokens per request: (?P<x>[\d.]+)x")
_LOAD = re.compile(r"Loading weights took (?P<s>[\d.]+) s")
_MODEL_LOAD = re.compile(r"Model loading took (?P<gib>[\d.]+) GiB(?: memory)? and (?P<s>[\d.]+) s")
_INIT = re.compile(r"init engine \([^)]*\) took (?P<s>[\d.]+) s")
_VERSION = re.compile(r"Initializing a V1 LLM engine \(v(?P<v>[^)]+)\)")
# Where else a log names versions, most specific first: (field, pattern, where it was found).
_VERSIONS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("vllm_version", _VERSION, "engine start line"),
    ("vllm_version", re.compile(r"vLLM API server version (?P<v>\S+)"), "API server line"),
    ("vllm_version", re.compile(r"█\s+version\s+(?P<v>\d\S*)"), "startup banner"),
    ("vllm_version", re.compile(r"^\s*vLLM Version: (?P<v>\d\S*)", re.M), "collect_env output"),
    ("vllm_version", re.compile(r"^\s*vllm(?:\s+|==)(?P<v>\d\S*)", re.M), "pip list output"),
    (
        "vllm_ascend_version",
        re.compile(r"^\s*vLLM Ascend Version: (?P<v>\d\S*)", re.M),
        "collect_env output",
    ),
    (
        "vllm_ascend_version",
        re.compile(r"^\s*vllm[-_]ascend(?:\s+|==)(?P<v>\d\S*)", re.M | re.I),
        "pip list output",
    ),
)
_PLUGIN = re.compile(r"Platform plugin (?P<p>\w+) is activated")
_DETECTED = re.compile(r"Automatically detected platform (?P<p>\w+)")
_DEVICE = re.compile(r"\bdevice_config=(?P<p>\w+)")
_ARGS = re.compile(r"non-default args: (?P<a>\{.*\})\s*$", re.M)
_NAMESPACE = re.compile(r"\bargs: Namespace\((?P<a>.*)\)\s*$", re.M)
_ENGINE = re.compile(r"Initializing a V1 LLM engine \([^)]*\) with config: (?P<c>.*)$", re.M)
# The effective settings the engine start line states, worth comparing with a plan.
ENGINE_KEYS = (
    "max_seq_len",
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "data_parallel_size",
    "quantization",
    "kv_cache_dtype",
    "enforce_eager",
    "dtype",
    "served_model_name",
    "enable_prefix_caching",
    "trust_remote_code",
    "seed",
    "device_config",
)
# argument names that hold credentials (api_key, hf_token, ...); never max_num_batched_tokens
# (vLLM >= 0.2x masks api_key, hf_token and watermark_config itself as "***"; older ones did not)
SECRET = re.compile(r"(?:^|_)(?:key|token|secret|password|passwd)$|^watermark_config$", re.I)
REDACTED = "<redacted>"


class LogFacts(BaseModel):
    kv_cache_tokens: list[int] = Field(
        default_factory=list, description="one per engine (data-parallel rank)"
    )
    kv_cache_device: str | None = None
    max_concurrency: float | None = None
    concurrency_len: int | None = None
    weights_load_s: float | None = None
    weights_gib: float | None = None
    engine_init_s: float | None = None
    vllm_version: str | None = None
    vllm_ascend_version: str | None = Field(
        None, description="only when the log carries it (pip list or collect_env output)"
    )
    platform: str | None = Field(
        None, description="the platform plugin activated (ascend), else the engine's device"
    )
    launch_args: dict[str, Any] | None = Field(
        None, description="the server's arguments as it logged them; secrets redacted"
    )
    launch_args_kind: str | None = Field(
        None,
        description="'non-default args' (only what differs from vLLM's defaults) or "
        "'namespace' (every argument)",
    )
    engine_config: dict[str, str] = Field(
        default_factory=dict, description="effective settings from the engine start line"
    )
    found_in: dict[str, str] = Field(
        default_factory=dict, description="which log line each version came from"
    )


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def split_top(text: str) -> list[str]:
    """``a=1, b=[2, 3], c='x, y'`` -> the three items: commas inside brackets or quotes stay."""
    items, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    items.append(text[start:].strip())
    return [x for x in items if x]


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text  # an object's repr (LoRAModulePath(...), <Enum: 1>): kept as text


def _redact(args: dict[str, Any]) -> dict[str, Any]:
    return {k: (REDACTED if SECRET.search(k) and v else v) for k, v in args.items()}


def parse_args(text: str, *, namespace: bool = False) -> dict[str, Any]:
    """The ``{...}`` of a ``non-default args`` line or the inside of ``Namespace(...)``."""
    if not namespace:
        parsed = _value(text)
        if isinstance(parsed, dict):
            return _redact({str(k): v for k, v in parsed.items()})
        text = text.strip()[1:-1]
    out: dict[str, Any] = {}
    for item in split_top(text):
        key, sep, value = item.partition("=" if namespace else ":")
        if sep:
            out[str(_value(key.strip()))] = _value(value.strip())
    return _redact(out)


def parse_log(text: str) -> LogFacts:
    facts = LogFacts()
    for m in _KV.finditer(text):
        facts.kv_cache_tokens.append(_int(m["tokens"]))
        facts.kv_cache_device = m["dev"]
    if m2 := _CONC.search(text):
        facts.concurrency_len = _int(m2["len"])
        facts.max_concurrency = float(m2["x"])
    if m3 := _LOAD.search(text):
        facts.weights_load_s = float(m3["s"])
    if m4 := _MODEL_LOAD.search(text):
        facts.weights_gib = float(m4["gib"])
        facts.weights_load_s = facts.weights_load_s or float(m4["s"])
    if m5 := _INIT.search(text):
        facts.engine_init_s = float(m5["s"])
    for field, pattern, where in _VERSIONS:
        if getattr(facts, field) is None and (m6 := pattern.search(text)):
            setattr(facts, field, m6["v"])
            facts.found_in[field] = where
    for platform in (_PLUGIN, _DETECTED, _DEVICE):
        if facts.platform is None and (m7 := platform.search(text)):
            facts.platform = m7["p"]
    if m8 := _ARGS.search(text):
        facts.launch_args, facts.launch_args_kind = parse_args(m8["a"]), "non-default args"
    elif m9 := _NAMESPACE.search(text):
        facts.launch_args = parse_args(m9["a"], namespace=True)
        facts.launch_args_kind = "namespace"
    if m10 := _ENGINE.search(text):
        for item in split_top(m10["c"]):
            key, sep, value = item.partition("=")
            if sep and key.strip() in ENGINE_KEYS:
                facts.engine_config[key.strip()] = value.strip()
    return facts
