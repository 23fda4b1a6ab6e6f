"""``run_smoke(SmokeOptions) -> SmokeResult``: every registered check against one endpoint,
protocol checks first. Only the protocol checks decide the verdict."""

from __future__ import annotations

import time
from typing import Any, Literal

from adaptgate.client import Client
from adaptgate.console import Output
from adaptgate.errors import ServerUnreachable
from adaptgate.messages import message
from adaptgate.smoke import differential, protocol, quality  # noqa: F401 - registers checks
from adaptgate.smoke.base import CHECKS, CheckDef, Outcome, SmokeContext
from adaptgate.smoke.models import CheckResult, CheckStatus, SmokeOptions, SmokeResult

# checks that run after the others of their category: chat_template renders thinking templates
# both ways once the chat check has seen whether the model thinks; chat_answer loads the CPU
# reference (the slowest check), so the quick quality answers come first
LAST = frozenset({"chat_template", "chat_answer"})


def selected(options: SmokeOptions) -> list[CheckDef]:
    for name in [*options.only, *options.skip]:
        CHECKS.get(name)  # unknown names raise UnknownKind listing the valid ones
    defs = [d for _, d in CHECKS.items()]
    if options.only:
        defs = [d for d in defs if d.id in options.only]
    defs = [d for d in defs if d.id not in options.skip]
    return sorted(defs, key=lambda d: (d.category != "protocol", d.id in LAST))


def _connect(ctx: SmokeContext) -> None:
    reply = ctx.client.get("/v1/models")
    if reply.status == 0:
        raise ServerUnreachable(
            f"nothing answers at {ctx.client.base} ({reply.error})",
            fix="check the URL and that the server is up (`curl URL/health`)",
        )
    if reply.status in {401, 403}:
        raise ServerUnreachable(
            f"{ctx.client.base} refused the request (HTTP {reply.status})",
            fix="set the API key in the environment variable named by --api-key-env",
        )
    data = (reply.data or {}).get("data") if isinstance(reply.data, dict) else None
    if not ctx.model:
        ctx.model = (data or [{}])[0].get("id", "") if data else ""
    entry: dict[str, Any] = next((m for m in data or [] if m.get("id") == ctx.model), {})
    ctx.max_model_len = entry.get("max_model_len")


def _run_one(d: CheckDef, ctx: SmokeContext) -> CheckResult:
    t0 = time.perf_counter()
    try:
        outcome = d.fn(ctx)
    except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
        outcome = Outcome.failed(
            message("smoke.check_raised", error=type(exc).__name__, detail=str(exc))
        )
    return CheckResult(
        id=d.id,
        title=d.title,
        category=d.category,
        status=outcome.status,
        reason=outcome.reason,
        evidence=outcome.evidence,
        seconds=round(time.perf_counter() - t0, 3),
    )


def run_smoke(options: SmokeOptions, out: Output | None = None) -> SmokeResult:
    out = out or Output()
    client = Client(options.url, api_key_env=options.api_key_env, timeout_s=options.timeout_s)
    ctx = SmokeContext(client=client, options=options, model=options.model or "")
    ctx.thinking = options.thinking
    _connect(ctx)
    results = []
    for d in selected(options):
        result = _run_one(d, ctx)
        out.status(f"  {result.status.value:7} {d.category:8} {d.id}: {result.reason}")
        results.append(result)
    proto = [r for r in results if r.category == "protocol"]
    qual = [r for r in results if r.category == "quality"]
    protocol_verdict: Literal["PASS", "FAIL"] = (
        "FAIL" if any(r.status is CheckStatus.FAIL for r in proto) else "PASS"
    )
    ran = [r for r in qual if r.status is not CheckStatus.SKIPPED]
    quality_verdict: Literal["PASS", "FAIL", "SKIPPED"] = "SKIPPED"
    if ran:
        quality_verdict = "FAIL" if any(r.status is CheckStatus.FAIL for r in ran) else "PASS"
    counts = {s.value: sum(r.status is s for r in results) for s in CheckStatus}
    return SmokeResult(
        url=options.url,
        model=ctx.model or None,
        checks=results,
        protocol_verdict=protocol_verdict,
        quality_verdict=quality_verdict,
        verdict=protocol_verdict,
        counts=counts,
    )
