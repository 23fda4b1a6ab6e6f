"""Gates with scripted outcomes, for testing the runner without real gates."""

from __future__ import annotations

from adaptgate.errors import ConfigError
from adaptgate.gate import Gate, GateOutcome, RunContext
from adaptgate.record import GateStatus

CALLS: list[str] = []
SCRIPT: dict[str, str] = {}


class _Scripted(Gate):
    def run(self, ctx: RunContext) -> GateOutcome:
        CALLS.append(self.name)
        action = SCRIPT.get(self.name, "pass")
        if action == "bad-input":
            raise ConfigError("config.json has no num_hidden_layers", fix="add it")
        if action == "crash":
            raise RuntimeError("boom")
        if action == "fail":
            return GateOutcome(GateStatus.FAIL, "measured 2 > 1")
        if action == "inconclusive":
            return GateOutcome(GateStatus.INCONCLUSIVE, "measurement INVALID in all 3 attempts")
        path = ctx.gate_dir(self.name) / "out.txt"
        path.write_text(self.name)
        upstream = ctx.passed("alpha")
        return GateOutcome(
            GateStatus.PASS,
            "ok",
            summary={"value": 1.5, "saw_alpha": upstream is not None},
            artifacts=[path],
        )


class Alpha(_Scripted):
    name = "alpha"
    title = "Alpha"


class Beta(_Scripted):
    name = "beta"
    title = "Beta"


class Gamma(_Scripted):
    name = "gamma"
    title = "Gamma"
