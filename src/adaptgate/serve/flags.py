"""The engine arguments of a plan, each with its reason; and the environment from env.yaml."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from adaptgate.serve.knowledge import (
    PlanContext,
    env_knowledge,
    recipes,
    source_text,
    when_holds,
)
from adaptgate.serve.models import EnvVar, Flag, Layout, Omitted

MAX_NUM_BATCHED_TOKENS = 8192
DP_RPC_PORT = 13389
# `{name}` in env.yaml values is filled from the plan; `${NAME}` stays for the shell.
_PLACEHOLDER = re.compile(r"(?<!\$)\{(\w+)\}")


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass
class FlagInputs:
    """Everything the flags depend on, decided before: plan.py fills it."""

    ctx: PlanContext
    served_model_name: str
    host: str
    port: int
    layout: Layout
    max_model_len: int
    max_model_len_why: str
    max_num_seqs: int
    max_num_seqs_why: str
    utilization: float | None
    quantization: str | None
    quantization_why: str
    kv_cache_dtype: str
    stage: str
    enforce_eager: bool
    reasoning_parser: str | None
    tool_parser: str | None
    parsers_why: str
    mtp_tokens: int | None
    trust_remote_code: bool
    release: tuple[int, int]


def _capture_sizes(max_tokens: int) -> list[int]:
    sizes, n = [], 1
    while n < max_tokens:
        sizes.append(n)
        n *= 2
    return [*sizes, max_tokens]


def _parallel_flags(i: FlagInputs) -> list[Flag]:
    lay = i.layout
    flags = [Flag(flag="--tensor-parallel-size", value=str(lay.tp), reason=lay.reason)]
    if lay.dp > 1:
        flags.append(
            Flag(
                flag="--data-parallel-size",
                value=str(lay.dp),
                reason=f"{lay.dp} replicas of the attention layers; experts sharded over all "
                f"{lay.ranks} ranks",
            )
        )
    if lay.expert_parallel:
        flags.append(
            Flag(
                flag="--enable-expert-parallel",
                reason=f"MoE experts split whole over the {lay.ranks} ranks (EP) instead of "
                "slicing every expert (the MoE tutorials' setting; vllm-ascend's MC2/all-to-all "
                "dispatch kernels are built for EP)",
                source=source_text(recipes(), "tut-235b"),
            )
        )
    return flags


def _accelerator_flags(i: FlagInputs) -> list[Flag]:
    platform = i.ctx.platform
    flags: list[Flag] = []
    if platform == "cpu":
        return flags
    flags.append(
        Flag(
            flag="--max-num-batched-tokens",
            value=str(MAX_NUM_BATCHED_TOKENS),
            reason="prefill chunk per step; the memory plan's activation reserve was measured "
            f"at {MAX_NUM_BATCHED_TOKENS} (larger values raise the profiling peak)",
        )
    )
    if i.utilization is not None:
        flags.append(
            Flag(
                flag="--gpu-memory-utilization",
                value=f"{i.utilization:g}",
                reason="the fraction the memory plan was computed for",
            )
        )
    return flags


def _graph_flags(i: FlagInputs) -> list[Flag]:
    flags: list[Flag] = []
    if i.enforce_eager:
        why = (
            "the CPU build starts in ~40 s eager vs ~80-140 s compiled; tiny models gain "
            "nothing from compilation"
            if i.ctx.platform == "cpu"
            else "asked for (isolates graph-capture problems)"
        )
        return [Flag(flag="--enforce-eager", reason=why)]
    if i.ctx.platform == "ascend":
        decode_tokens = i.max_num_seqs * (1 + (i.mtp_tokens or 0))
        config = {
            "cudagraph_mode": "FULL_DECODE_ONLY",
            "cudagraph_capture_sizes": _capture_sizes(decode_tokens),
        }
        flags.append(
            Flag(
                flag="--compilation-config",
                value=compact_json(config),
                reason="ACL graph of the whole decode step (FULL_DECODE_ONLY, the tutorials' "
                "recommendation); capture sizes are powers of two up to the decode batch "
                f"({i.max_num_seqs} seqs x {1 + (i.mtp_tokens or 0)} tokens): fewer graphs "
                "start faster and stay inside A2's stream budget",
                source=source_text(recipes(), "tut-235b"),
            )
        )
    if i.ctx.platform in {"ascend", "cuda"}:
        flags.append(
            Flag(
                flag="--async-scheduling",
                reason="schedule step n+1 while step n runs on the device (hides host overhead)",
                source=source_text(recipes(), "seed-002"),
            )
        )
    return flags


def additional_config(ctx: PlanContext) -> tuple[dict[str, Any], list[str]]:
    merged: dict[str, Any] = {}
    reasons: list[str] = []
    for row in recipes()["additional_config"]:
        if when_holds(row.get("when"), ctx):
            merged[row["key"]] = row["value"]
            reasons.append(f"{row['key']}: {row['reason']}")
    return merged, reasons


def _feature_flags(i: FlagInputs) -> list[Flag]:
    flags: list[Flag] = []
    extra, reasons = additional_config(i.ctx)
    if extra:
        flags.append(
            Flag(
                flag="--additional-config",
                value=compact_json(extra),
                reason="; ".join(reasons),
                source=source_text(recipes(), "ascend-config"),
            )
        )
    if i.mtp_tokens:
        flags.append(
            Flag(
                flag="--speculative-config",
                value=compact_json({"method": "mtp", "num_speculative_tokens": i.mtp_tokens}),
                reason=f"the checkpoint's MTP layer drafts {i.mtp_tokens} token(s) per step "
                "(see the MTP memory cost)",
            )
        )
    if i.reasoning_parser:
        flags.append(
            Flag(
                flag="--reasoning-parser",
                value=i.reasoning_parser,
                reason=f"thinking model ({i.parsers_why}): reasoning goes to the reasoning "
                "field, the answer to content",
            )
        )
    if i.tool_parser:
        flags.append(
            Flag(
                flag="--enable-auto-tool-choice",
                reason="let the model decide to call tools (tool_choice=auto)",
            )
        )
        flags.append(
            Flag(
                flag="--tool-call-parser",
                value=i.tool_parser,
                reason=f"the family's tool-call format ({i.parsers_why})",
            )
        )
    if i.trust_remote_code:
        flags.append(
            Flag(
                flag="--trust-remote-code",
                reason="config.json has auto_map: the architecture's code ships with the model",
            )
        )
    return flags


def build_flags(i: FlagInputs) -> list[Flag]:
    flags = [
        Flag(
            flag="--served-model-name",
            value=i.served_model_name,
            reason="the stable name clients send as `model`",
        ),
        Flag(flag="--host", value=i.host, reason=_host_reason(i.host)),
        Flag(flag="--port", value=str(i.port), reason="the API port"),
        *_parallel_flags(i),
        Flag(flag="--max-model-len", value=str(i.max_model_len), reason=i.max_model_len_why),
        Flag(flag="--max-num-seqs", value=str(i.max_num_seqs), reason=i.max_num_seqs_why),
        *_accelerator_flags(i),
    ]
    if i.quantization:
        flags.append(Flag(flag="--quantization", value=i.quantization, reason=i.quantization_why))
    if i.kv_cache_dtype.startswith("fp8"):
        flags.append(
            Flag(
                flag="--kv-cache-dtype",
                value=i.kv_cache_dtype,
                reason="FP8 KV cache judged safe by the kvcache gate (or asked for): half the "
                "bytes per token, twice the tokens",
            )
        )
    if i.stage == "dummy":
        flags.append(
            Flag(
                flag="--load-format",
                value="dummy",
                reason="Stage A: random weights prove the architecture and operators start "
                "without reading the checkpoint",
            )
        )
    return flags + _graph_flags(i) + _feature_flags(i)


def _host_reason(host: str) -> str:
    if host in {"127.0.0.1", "localhost", "::1"}:
        return "loopback only: the server is not reachable from other machines"
    return "listen on every interface so clients (and other nodes) can reach it"


def environment(ctx: PlanContext) -> list[EnvVar]:
    data = env_knowledge()
    out: list[EnvVar] = []
    for row in data["variables"]:
        if when_holds(row.get("when"), ctx):
            value = _PLACEHOLDER.sub(lambda m: str(ctx.values[m[1]]), str(row["value"]))
            out.append(
                EnvVar(
                    name=row["name"],
                    value=value,
                    reason=row["reason"],
                    source=source_text(data, row.get("source")),
                )
            )
    return out


def omitted_items(release: tuple[int, int], trust_needed: bool) -> list[Omitted]:
    items = [Omitted(name=o["name"], reason=o["reason"]) for o in env_knowledge()["omitted"]]
    for row in recipes()["retired_additional_config"]:
        major, minor = (int(x) for x in str(row["removed_in"]).split("."))
        if release >= (major, minor):
            items.append(Omitted(name=f"additional-config {row['key']}", reason=row["reason"]))
    if not trust_needed:
        items.append(
            Omitted(
                name="--trust-remote-code",
                reason="config.json has no auto_map: the architecture is built into "
                "transformers and vLLM, so no repository code needs to run",
            )
        )
    return items


def node_flags(layout: Layout, node: int) -> tuple[list[Flag], dict[str, str]]:
    """Data-parallel flags of one node of a multi-node layout (head = node 0)."""
    if layout.nodes == 1:
        return [], {}
    common = [
        Flag(
            flag="--data-parallel-size-local",
            value=str(layout.dp_local),
            reason=f"{layout.dp_local} DP rank(s) on each node",
        ),
        Flag(
            flag="--data-parallel-address",
            value="${HEAD_IP}",
            reason="node 0's address: every node joins its DP coordinator",
        ),
        Flag(
            flag="--data-parallel-rpc-port",
            value=str(DP_RPC_PORT),
            reason="DP coordinator port on node 0 (the tutorials' value)",
        ),
    ]
    holders = {"HEAD_IP": "IP address of node 0", "LOCAL_IP": "this node's IP address"}
    holders["NIC_NAME"] = "network interface that carries LOCAL_IP (see: ip addr)"
    if node == 0:
        return common, holders
    worker = [
        Flag(flag="--headless", reason="engine ranks only; node 0 serves the API"),
        Flag(
            flag="--data-parallel-start-rank",
            value=str(node * layout.dp_local),
            reason=f"this node hosts DP ranks from {node * layout.dp_local}",
        ),
    ]
    return worker + common, holders
