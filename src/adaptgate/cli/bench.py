"""``adaptgate bench URL ...``: benchmark a serving endpoint; ``adaptgate bench compare A B``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from adaptgate.cli._common import (
    api_key_env_option,
    cpu_list_option,
    emit_json,
    handle_errors,
    output_options,
    served_model_option,
)
from adaptgate.console import Output
from adaptgate.errors import EXIT_FAIL, EXIT_OK

EXAMPLES = """\b
Examples:
  adaptgate bench http://127.0.0.1:8000 --rate 8 --num-requests 200 --out bench-out
  adaptgate bench http://127.0.0.1:8000 --closed --concurrency 32 --input-len 16384 \\
      --output-len 2048 --duration 300
  adaptgate bench http://127.0.0.1:8000 --rates 1,2,4,8,16 --slo-ttft-ms 500 --out sweep
  adaptgate bench http://127.0.0.1:8000 --rate 4 --sla-search --slo-ttft-ms 300 \\
      --slo-tpot-ms 50
  adaptgate bench http://127.0.0.1:8000 --scenario scenario.yaml
  adaptgate bench compare before/bench.json after/bench.json
The API key is read from $OPENAI_API_KEY (or --api-key-env NAME), sent as a Bearer token, never
printed or stored. Exit code 1 when a run is INVALID (the client limited it); see its reasons."""


class BenchGroup(click.Group):
    """``bench URL ...`` runs a benchmark; ``bench compare ...`` is a subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("bench", cls=BenchGroup, epilog=EXAMPLES)
def command() -> None:
    """Benchmark an OpenAI-compatible server (vLLM, vllm-ascend) with numbers you can trust:
    every metric printed with its definition, the client's own overhead measured, INVALID when
    the client limited the result."""


def _floats(text: str | None) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()] if text else []


@command.command("run", epilog=EXAMPLES)
@click.argument("url")
@served_model_option
@click.option("--api", type=click.Choice(["completions", "chat"]), help="[default: completions]")
@click.option(
    "--scenario",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Scenario YAML (sections endpoint/dataset/load/slo/sweep/output); options "
    "given here override it.",
)
@click.option("--rate", type=float, help="Requests/s (open loop) [default: as fast as possible].")
@click.option("--arrival", type=click.Choice(["poisson", "gamma", "constant"]))
@click.option("--burstiness", type=float, help="Gamma shape (1 = Poisson, <1 burstier).")
@click.option("--concurrency", type=int, help="Closed loop: in flight; open loop: a cap.")
@click.option("--closed", is_flag=True, default=None, help="Closed loop at --concurrency.")
@click.option("--num-requests", "-n", type=int, help="[default: 200]")
@click.option("--duration", "duration_s", type=float, help="Stop dispatching after seconds.")
@click.option("--warmup", "warmup_requests", type=int, help="Warmup requests, not measured.")
@click.option("--workers", help="Client processes: a number or 'auto'.")
@cpu_list_option(
    "--client-cpus",
    "Pin the client to these CPUs: the ones a server on this host is not pinned to (adaptgate "
    "serve --cpus)",
)
@click.option(
    "--retries",
    type=click.IntRange(0, 10),
    help="Measure again, at most this many times, when a run comes out INVALID [default: 0].",
)
@click.option("--seed", type=int, help="Seed of the arrival schedule and the dataset.")
@click.option("--dataset", type=click.Choice(["random", "sharegpt", "jsonl", "multiturn"]))
@click.option("--dataset-path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--input-len", type=int)
@click.option("--output-len", type=int)
@click.option("--range-ratio", type=float, help="Lengths uniform within ± this ratio.")
@click.option("--prefix-len", type=int, help="Shared prefix tokens (prefix-cache workloads).")
@click.option("--num-prefixes", type=int)
@click.option("--turns", type=int, help="Multi-turn: user turns per conversation.")
@click.option("--ignore-eos/--no-ignore-eos", default=None, help="[default: ignore EOS]")
@click.option("--slo-ttft-ms", type=float)
@click.option("--slo-tpot-ms", type=float)
@click.option("--slo-e2el-ms", type=float)
@click.option("--rates", help="Sweep over these rates (comma-separated).")
@click.option("--concurrencies", help="Sweep over these concurrencies (comma-separated).")
@click.option(
    "--sla-search", is_flag=True, default=None, help="Find the largest rate meeting SLOs."
)
@api_key_env_option(None)  # None: the scenario's, else OPENAI_API_KEY
@click.option("--timeout", "timeout_s", type=float, help="Per-request timeout, s.")
@click.option(
    "--temperature",
    type=float,
    help="Sampling temperature [default: not sent: the server's defaults].",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write bench.json, bench.vllm.json, requests.jsonl, bench.csv, plots here.",
)
@click.option("--label")
@click.option("--no-plots", is_flag=True, default=None)
@click.option("--keep-text", is_flag=True, default=None, help="Keep generated text per request.")
@click.option("--scrape-interval", type=float, help="Seconds between /metrics scrapes [5].")
@click.option("--no-scrape", is_flag=True, default=None, help="Do not scrape /metrics.")
@output_options
@handle_errors
def run_command(url: str, scenario: Path | None, out: Output, **opts: Any) -> int:
    """Benchmark the server at URL."""
    from adaptgate.bench.api import build_config, run
    from adaptgate.bench.config import load_scenario, merge

    base = load_scenario(scenario) if scenario else {}
    workers = opts["workers"]
    overrides: dict[str, dict[str, object]] = {
        "endpoint": {
            "url": url,
            "model": opts["model"],
            "api": opts["api"],
            "api_key_env": opts["api_key_env"],
            "timeout_s": opts["timeout_s"],
        },
        "load": {
            "rate": opts["rate"],
            "arrival": opts["arrival"],
            "burstiness": opts["burstiness"],
            "concurrency": opts["concurrency"],
            "mode": "closed" if opts["closed"] else None,
            "num_requests": opts["num_requests"],
            "duration_s": opts["duration_s"],
            "warmup_requests": opts["warmup_requests"],
            "seed": opts["seed"],
            "workers": int(workers) if workers and workers.isdigit() else workers,
            "client_cpus": opts["client_cpus"],
        },
        "validity": {"retries": opts["retries"]},
        "dataset": {
            "kind": opts["dataset"],
            "path": opts["dataset_path"],
            "input_len": opts["input_len"],
            "output_len": opts["output_len"],
            "range_ratio": opts["range_ratio"],
            "prefix_len": opts["prefix_len"],
            "num_prefixes": opts["num_prefixes"],
            "turns": opts["turns"],
            "ignore_eos": opts["ignore_eos"],
            "seed": opts["seed"],
        },
        "slo": {
            "ttft_ms": opts["slo_ttft_ms"],
            "tpot_ms": opts["slo_tpot_ms"],
            "e2el_ms": opts["slo_e2el_ms"],
        },
        "sweep": {
            "rates": _floats(opts["rates"]) or None,
            "concurrencies": [int(x) for x in _floats(opts["concurrencies"])] or None,
            "sla_search": opts["sla_search"],
        },
        "output": {
            "dir": opts["out_dir"],
            "label": opts["label"],
            "plots": False if opts["no_plots"] else None,
            "keep_text": opts["keep_text"],
        },
    }
    if opts["duration_s"] is not None and opts["num_requests"] is None:
        overrides["load"]["num_requests"] = None
        base.setdefault("load", {})
        if isinstance(base["load"], dict):
            base["load"]["num_requests"] = None
    cfg = build_config(merge(base, overrides))
    outcome = run(cfg, out)
    emit_json(out, outcome.result.to_json())
    if out.human:
        from adaptgate.bench.models import SweepResult
        from adaptgate.bench.outputs.tables import render, render_sweep

        console = out.console()
        if isinstance(outcome.result, SweepResult):
            render_sweep(outcome.result, console)
        else:
            render(outcome.result, console)
        for f in outcome.files[:3]:
            click.echo(f"wrote {f}")
    return EXIT_OK if outcome.valid else EXIT_FAIL


@command.command("compare")
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@output_options
@handle_errors
def compare_command(a: Path, b: Path, out: Output) -> int:
    """Two saved runs (bench.json or their directories) side by side, with the differences."""
    from adaptgate.bench.compare import compare, render
    from adaptgate.bench.models import BenchResult
    from adaptgate.bench.outputs.files import load_result
    from adaptgate.errors import UsageError

    ra, rb = load_result(a), load_result(b)
    if not isinstance(ra, BenchResult) or not isinstance(rb, BenchResult):
        raise UsageError("compare takes two single runs", fix="pass bench.json files, not sweeps")
    cmp = compare(ra, rb, str(a), str(b))
    emit_json(out, cmp.to_json())
    if out.human:
        render(cmp, out.console())
    return EXIT_OK


@command.command("calibration-server")
@click.option("--port", type=int, default=8100, show_default=True)
@click.option("--ttft-ms", type=float, default=20.0, show_default=True)
@click.option("--itl-ms", type=float, default=5.0, show_default=True)
@click.option("--output-tokens", type=int, help="[default: each request's max_tokens]")
def calibration_command(
    port: int, ttft_ms: float, itl_ms: float, output_tokens: int | None
) -> None:
    """Serve the calibration instrument on 127.0.0.1 (tokens on a fixed schedule, no model)."""
    from adaptgate.bench.calibration_server import Schedule, serve

    serve(Schedule(ttft_ms=ttft_ms, itl_ms=itl_ms, output_tokens=output_tokens), port=port)
