"""Numbers vLLM reports about itself in its startup log: KV-cache capacity, concurrency,
weight-loading and engine-init times, the vLLM version."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

# vLLM >= 0.11: "GPU KV cache size: 1,048,576 tokens" (the device name varies: GPU, CPU, NPU,
# "CPU + host"), then "Maximum concurrency for 4,096 tokens per request: 256.00x".
_KV = re.compile(r"(?P<dev>[A-Za-z]+(?: \+ host)?) KV cache size: (?P<tokens>[\d,]+) tokens")
_CONC = re.compile(r"Maximum concurrency for (?P<len>[\d,]+) tokens per request: (?P<x>[\d.]+)x")
_LOAD = re.compile(r"Loading weights took (?P<s>[\d.]+) s")
_MODEL_LOAD = re.compile(r"Model loading took (?P<gib>[\d.]+) GiB(?: memory)? and (?P<s>[\d.]+) s")
_INIT = re.compile(r"init engine \([^)]*\) took (?P<s>[\d.]+) s")
_VERSION = re.compile(r"Initializing a V1 LLM engine \(v(?P<v>[^)]+)\)")


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


def _int(text: str) -> int:
    return int(text.replace(",", ""))


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
    if m6 := _VERSION.search(text):
        facts.vllm_version = m6["v"]
    return facts
