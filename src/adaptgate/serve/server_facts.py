"""The server's own facts when ``run --url`` measures a server launched elsewhere: ``GET
/version``, ``/v1/models`` (ids, max_model_len) and, with ``--server-log``, the versions,
platform and launch arguments its log states (``logfacts.parse_log``). The flags it runs with
are compared with the launch plan's; every difference is listed, none fails the gate.

A log's ``non-default args`` holds only what differs from vLLM's defaults, so a plan flag
missing there ran with vLLM's default ("not-passed"); the engine start line's effective values
(``max_seq_len``, ``tensor_parallel_size``, ...) are compared where the arguments are silent."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from adaptgate.client import Client
from adaptgate.errors import LogNotFound
from adaptgate.serve.logfacts import LogFacts, parse_log

if TYPE_CHECKING:  # annotations only: models holds ServerFacts
    from adaptgate.serve.models import LaunchPlan

# Arguments that name where the server runs or what it loads, not how: they differ by design
# (container paths, ports); the served name is compared through /v1/models.
NOT_COMPARED = frozenset(
    {"model", "model_tag", "host", "port", "served_model_name", "api_key", "tokenizer"}
)
ENGINE_ALIAS = {"max_model_len": "max_seq_len"}

DifferenceKind = Literal["differs", "not-passed", "extra", "version", "model"]


class ServedModel(BaseModel):
    id: str
    max_model_len: int | None = None
    root: str | None = None


class ServerDifference(BaseModel):
    """One way the running server departs from the launch plan."""

    flag: str = Field(description="the engine flag, or what was compared (/version, model)")
    kind: DifferenceKind
    plan: str | None = Field(description="the plan's value; 'set' for a switch")
    server: str | None = Field(description="the server's value; None when it has none")
    source: str = Field(description="where the server's value was read")


class ServerFacts(BaseModel):
    url: str
    version: str | None = Field(None, description="GET /version")
    models: list[ServedModel] = Field(default_factory=list, description="GET /v1/models")
    served: ServedModel | None = Field(None, description="the model the run measures")
    log: str | None = Field(None, description="--server-log")
    log_facts: LogFacts | None = None
    differences: list[ServerDifference] = Field(default_factory=list)
    unverified: list[str] = Field(
        default_factory=list, description="plan flags the server's log does not state"
    )


def probe(url: str, timeout: float = 10.0) -> tuple[str | None, list[ServedModel], str | None]:
    """(/version, /v1/models, why nothing sensible answered); the key is sent, never shown."""
    client = Client(url, timeout_s=timeout)  # sends OPENAI_API_KEY, as smoke and bench do
    reply = client.get("/v1/models")
    status, doc = reply.status, reply.data
    data = doc.get("data") if isinstance(doc, dict) else None
    if status != 200 or not isinstance(data, list) or not data:
        why = "no answer" if status == 0 else f"HTTP {status}"
        return None, [], f"{why} from /v1/models" if status != 200 else "/v1/models lists no model"
    models = [
        ServedModel(
            id=str(m.get("id")),
            max_model_len=m.get("max_model_len")
            if isinstance(m.get("max_model_len"), int)
            else None,
            root=str(m["root"]) if m.get("root") else None,
        )
        for m in data
        if isinstance(m, dict)
    ]
    return client.version(), models, None


def _norm(value: Any) -> Any:
    """Plan text (``"8192"``, ``'{"a":1}'``), log text (``"True"``, ``"None"``) and parsed
    arguments (``['tiny']``, ``0.9``) in one comparable form."""
    if isinstance(value, str):
        text = value.strip()
        low = text.lower()
        if low in {"true", "false"}:
            return low == "true"
        if low in {"none", "null"}:
            return None
        for parse in (json.loads, ast.literal_eval):
            try:
                return _norm(parse(text))
            except (ValueError, SyntaxError, TypeError, RecursionError):
                continue
        return text
    if isinstance(value, list | tuple) and len(value) == 1:
        return _norm(value[0])
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _norm(v) for k, v in value.items()}
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _show(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def compare_flags(plan: LaunchPlan, facts: LogFacts) -> tuple[list[ServerDifference], list[str]]:
    """The plan's flags against the server's logged arguments and effective engine config."""
    args = facts.launch_args or {}
    complete = facts.launch_args_kind == "namespace"  # every argument, defaults included
    source = f"server log: {facts.launch_args_kind}"
    out: list[ServerDifference] = []
    unverified: list[str] = []
    planned: set[str] = set()
    for flag in plan.flags:
        name = flag.flag.lstrip("-").replace("-", "_")
        want: Any = True if flag.value is None else _norm(flag.value)
        if name.startswith("no_") and flag.value is None:
            name, want = name[3:], False
        planned.add(name)
        if name in NOT_COMPARED or (isinstance(want, str) and "${" in want):
            continue
        shown = "set" if flag.value is None else flag.value
        engine_key = ENGINE_ALIAS.get(name, name)
        if name in args:
            got, where = _norm(args[name]), source
        elif engine_key in facts.engine_config:
            got, where = _norm(facts.engine_config[engine_key]), "server log: engine start line"
        elif facts.launch_args is not None and not complete:
            out.append(
                ServerDifference(
                    flag=flag.flag, kind="not-passed", plan=shown, server=None, source=source
                )
            )
            continue
        else:
            unverified.append(flag.flag)
            continue
        if {type(got), type(want)} == {dict, str}:
            unverified.append(flag.flag)  # an object's repr against JSON: not comparable
        elif got != want:
            out.append(
                ServerDifference(
                    flag=flag.flag, kind="differs", plan=shown, server=_show(got), source=where
                )
            )
    if not complete:
        for name, value in args.items():
            if name in planned or name in NOT_COMPARED:
                continue
            out.append(
                ServerDifference(
                    flag="--" + name.replace("_", "-"),
                    kind="extra",
                    plan=None,
                    server=_show(_norm(value)),
                    source=source,
                )
            )
    return out, unverified


def _minor(version: str) -> str:
    return ".".join(version.lstrip("v").split("+")[0].split(".")[:2])


def server_facts(
    url: str, plan: LaunchPlan, log: Path | None = None
) -> tuple[ServerFacts, str | None]:
    """The facts, and why the server cannot be used (None when it answers with a model)."""
    version, models, why = probe(url)
    facts = ServerFacts(url=url.rstrip("/"), version=version, models=models)
    if why is not None:
        return facts, why
    facts.served = next((m for m in models if m.id == plan.served_model_name), models[0])
    diffs: list[ServerDifference] = []
    if facts.served.id != plan.served_model_name:
        diffs.append(
            ServerDifference(
                flag="--served-model-name",
                kind="model",
                plan=plan.served_model_name,
                server=", ".join(m.id for m in models),
                source="/v1/models",
            )
        )
    if facts.served.max_model_len is not None and facts.served.max_model_len != plan.max_model_len:
        diffs.append(
            ServerDifference(
                flag="--max-model-len",
                kind="differs",
                plan=str(plan.max_model_len),
                server=str(facts.served.max_model_len),
                source="/v1/models",
            )
        )
    if version and _minor(version) != _minor(plan.release):
        diffs.append(
            ServerDifference(
                flag="vLLM version",
                kind="version",
                plan=f"release {plan.release}",
                server=version,
                source="/version",
            )
        )
    if log is not None:
        if not log.is_file():
            raise LogNotFound(
                f"no server log {log}", fix="pass the log file the server writes (--server-log)"
            )
        facts.log = str(log)
        facts.log_facts = parse_log(log.read_text(encoding="utf-8", errors="replace"))
        ascend = facts.log_facts.vllm_ascend_version
        if ascend and plan.target.startswith("ascend") and ascend.split("+")[0] != plan.release:
            diffs.append(
                ServerDifference(
                    flag="vllm-ascend version",
                    kind="version",
                    plan=plan.release,
                    server=ascend,
                    source=f"server log: {facts.log_facts.found_in.get('vllm_ascend_version')}",
                )
            )
        flags, facts.unverified = compare_flags(plan, facts.log_facts)
        known = {d.flag for d in diffs}
        diffs += [d for d in flags if d.flag not in known]
    facts.differences = diffs
    return facts, None
