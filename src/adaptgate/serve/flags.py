"""The engine arguments of a plan, each with its reason; and the environment from env.yaml."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from adaptgate.messages import Said, message, said
from adaptgate.serve.knowledge import (
    PlanContext,
    env_knowledge,
    recipes,
    row_said,
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
    max_model_len_why: Said
    max_num_seqs: int
    max_num_seqs_why: Said
    utilization: float | None
    quantization: str | None
    quantization_why: Said
    kv_cache_dtype: str
    stage: str
    enforce_eager: bool
    reasoning_parser: str | None
    tool_parser: str | None
    parsers_why: Said
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
                reason=said("serve.flag_dp", dp=lay.dp, ranks=lay.ranks),
            )
        )
    if lay.expert_parallel:
        flags.append(
            Flag(
                flag="--enable-expert-parallel",
                reason=said("serve.flag_ep", ranks=lay.ranks),
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
            reason=said("serve.flag_batched_tokens", tokens=MAX_NUM_BATCHED_TOKENS),
        )
    )
    if i.utilization is not None:
        flags.append(
            Flag(
                flag="--gpu-memory-utilization",
                value=f"{i.utilization:g}",
                reason=said("serve.flag_utilization"),
            )
        )
    return flags


def _graph_flags(i: FlagInputs) -> list[Flag]:
    flags: list[Flag] = []
    if i.enforce_eager:
        why = "serve.flag_eager_cpu" if i.ctx.platform == "cpu" else "serve.flag_eager_asked"
        return [Flag(flag="--enforce-eager", reason=said(why))]
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
                reason=said(
                    "serve.flag_compilation",
                    seqs=i.max_num_seqs,
                    tokens=1 + (i.mtp_tokens or 0),
                ),
                source=source_text(recipes(), "tut-235b"),
            )
        )
    if i.ctx.platform in {"ascend", "cuda"}:
        flags.append(
            Flag(
                flag="--async-scheduling",
                reason=said("serve.flag_async"),
                source=source_text(recipes(), "seed-002"),
            )
        )
    return flags


def additional_config(ctx: PlanContext) -> tuple[dict[str, Any], list[tuple[str, Said]]]:
    merged: dict[str, Any] = {}
    reasons: list[tuple[str, Said]] = []
    for row in recipes()["additional_config"]:
        if when_holds(row.get("when"), ctx):
            merged[row["key"]] = row["value"]
            reasons.append((row["key"], row_said(row)))
    return merged, reasons


def _keyed(reasons: list[tuple[str, Said]]) -> Said:
    """``key: reason; key: reason`` as one sentence in the reader's language."""
    out = message("serve.keyed", key=reasons[0][0], reason=reasons[0][1])
    for key, reason in reasons[1:]:
        out = message("serve.keyed_more", before=out, key=key, reason=reason)
    return out.said


def _feature_flags(i: FlagInputs) -> list[Flag]:
    flags: list[Flag] = []
    extra, reasons = additional_config(i.ctx)
    if extra:
        flags.append(
            Flag(
                flag="--additional-config",
                value=compact_json(extra),
                reason=_keyed(reasons),
                source=source_text(recipes(), "ascend-config"),
            )
        )
    if i.mtp_tokens:
        flags.append(
            Flag(
                flag="--speculative-config",
                value=compact_json({"method": "mtp", "num_speculative_tokens": i.mtp_tokens}),
                reason=said("serve.flag_mtp", tokens=i.mtp_tokens),
            )
        )
    if i.reasoning_parser:
        flags.append(
            Flag(
                flag="--reasoning-parser",
                value=i.reasoning_parser,
                reason=said("serve.flag_reasoning", why=i.parsers_why),
            )
        )
    if i.tool_parser:
        flags.append(
            Flag(
                flag="--enable-auto-tool-choice",
                reason=said("serve.flag_auto_tool"),
            )
        )
        flags.append(
            Flag(
                flag="--tool-call-parser",
                value=i.tool_parser,
                reason=said("serve.flag_tool_parser", why=i.parsers_why),
            )
        )
    if i.trust_remote_code:
        flags.append(
            Flag(
                flag="--trust-remote-code",
                reason=said("serve.flag_trust"),
            )
        )
    return flags


def build_flags(i: FlagInputs) -> list[Flag]:
    flags = [
        Flag(
            flag="--served-model-name",
            value=i.served_model_name,
            reason=said("serve.flag_served_name"),
        ),
        Flag(flag="--host", value=i.host, reason=_host_reason(i.host)),
        Flag(flag="--port", value=str(i.port), reason=said("serve.flag_port")),
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
                reason=said("serve.flag_kv_fp8"),
            )
        )
    if i.stage == "dummy":
        flags.append(
            Flag(
                flag="--load-format",
                value="dummy",
                reason=said("serve.flag_dummy"),
            )
        )
    return flags + _graph_flags(i) + _feature_flags(i)


def _host_reason(host: str) -> Said:
    if host in {"127.0.0.1", "localhost", "::1"}:
        return said("serve.flag_host_loopback")
    return said("serve.flag_host_all")


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
                    reason=row_said(row),
                    source=source_text(data, row.get("source")),
                )
            )
    return out


def omitted_items(release: tuple[int, int], trust_needed: bool) -> list[Omitted]:
    items = [Omitted(name=o["name"], reason=row_said(o)) for o in env_knowledge()["omitted"]]
    for row in recipes()["retired_additional_config"]:
        major, minor = (int(x) for x in str(row["removed_in"]).split("."))
        if release >= (major, minor):
            items.append(Omitted(name=f"additional-config {row['key']}", reason=row_said(row)))
    if not trust_needed:
        items.append(
            Omitted(
                name="--trust-remote-code",
                reason=said("serve.omit_trust"),
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
            reason=said("serve.flag_dp_local", n=layout.dp_local),
        ),
        Flag(
            flag="--data-parallel-address",
            value="${HEAD_IP}",
            reason=said("serve.flag_dp_address"),
        ),
        Flag(
            flag="--data-parallel-rpc-port",
            value=str(DP_RPC_PORT),
            reason=said("serve.flag_dp_rpc"),
        ),
    ]
    holders = {"HEAD_IP": "IP address of node 0", "LOCAL_IP": "this node's IP address"}
    holders["NIC_NAME"] = "network interface that carries LOCAL_IP (see: ip addr)"
    if node == 0:
        return common, holders
    worker = [
        Flag(flag="--headless", reason=said("serve.flag_headless")),
        Flag(
            flag="--data-parallel-start-rank",
            value=str(node * layout.dp_local),
            reason=said("serve.flag_start_rank", rank=node * layout.dp_local),
        ),
    ]
    return worker + common, holders
