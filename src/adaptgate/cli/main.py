"""The ``adaptgate`` entry point. Commands load lazily so ``--help`` never imports torch."""

from __future__ import annotations

import importlib

import click

# name -> (module, short help). Modules are imported only when their command runs or shows help.
COMMANDS: dict[str, tuple[str, str]] = {
    "inspect": (
        "adaptgate.cli.inspect",
        "Architecture, parameters, quantization, memory, support, route.",
    ),
    "operators": (
        "adaptgate.cli.operators",
        "Operators the model's code uses, checked against a vllm-ascend tree.",
    ),
    "convert": (
        "adaptgate.cli.convert",
        "FP8 -> BF16/FP16 or W8A8_DYNAMIC (msModelSlim / compressed-tensors), streaming.",
    ),
    "plan": ("adaptgate.cli.plan", "Launch plan: vLLM command, env, container, RUNBOOK.md."),
    "serve": ("adaptgate.cli.serve", "Start and supervise vLLM from the plan (dummy/real)."),
    "doctor": ("adaptgate.cli.doctor", "Diagnose a vLLM / vllm-ascend log: cause and fix."),
    "smoke": ("adaptgate.cli.smoke", "Functional checks against an OpenAI-compatible server."),
    "reference": ("adaptgate.cli.reference", "CPU FP32 (or any device) reference dump."),
    "compare": ("adaptgate.cli.compare", "Compare two dumps: metrics, verdict, localization."),
    "precision": ("adaptgate.cli.precision", "Served-model check against a reference dump."),
    "accuracy": ("adaptgate.cli.accuracy", "Task accuracy through lm-eval, against a baseline."),
    "kvcache": ("adaptgate.cli.kvcache", "Is an FP8/INT8 KV cache safe for this model?"),
    "bench": ("adaptgate.cli.bench", "Serving benchmark with self-describing metrics."),
    "run": ("adaptgate.cli.run", "Run the gates in order into a run directory."),
    "report": ("adaptgate.cli.report", "Render the adaptation report of run directories."),
    "demo-model": ("adaptgate.cli.demo_model", "Write a tiny checkpoint in a real on-disk format."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(COMMANDS[cmd_name][0])
        command: click.Command = module.command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, short) for name, (_, short) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


EPILOG = """\b
Exit codes: 0 success or gate PASS, 1 gate FAIL, 2 bad input or usage, 3 internal error.
Every command takes --json (result JSON on stdout). ADAPTGATE_DEBUG=1 shows tracebacks."""


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="adaptgate")
def cli() -> None:
    """adaptgate: take a quantized LLM checkpoint to a served vLLM / vllm-ascend deployment,
    proving each step with measured evidence."""


def main() -> None:
    cli(prog_name="adaptgate")


if __name__ == "__main__":
    main()
