"""``adaptgate run``: the gates in order into one run directory."""

from __future__ import annotations

from pathlib import Path

import click

from adaptgate.cli._common import (
    allow_pickle_option,
    deprecated,
    device_option,
    devices_option,
    emit_json,
    gpu_memory_utilization_option,
    handle_errors,
    kv_cache_dtype_option,
    kv_formats_option,
    max_memory_option,
    max_model_len_option,
    output_options,
    release_option,
    target_option,
)
from adaptgate.console import Output
from adaptgate.errors import UsageError
from adaptgate.record import KV_CACHE_DTYPES, RENDERING, RunSettings


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _kv_cache(kv_cache_dtype: str | None, kv_formats: str | None) -> dict[str, str | None]:
    """The launch dtype and the formats to test. --kv-cache-dtype named the formats to test
    before --kv-formats did: a value of it that is no launch dtype still does, for one release."""
    if kv_cache_dtype is None or kv_cache_dtype in KV_CACHE_DTYPES:
        return {"kv_cache_dtype": kv_cache_dtype, "kv_formats": kv_formats}
    deprecated(
        f"--kv-cache-dtype {kv_cache_dtype} (formats to test)", f"--kv-formats {kv_cache_dtype}"
    )
    if kv_formats is not None:
        raise UsageError(
            f"--kv-cache-dtype {kv_cache_dtype} names formats to test, as --kv-formats does",
            fix="give the formats to test once, with --kv-formats",
        )
    return {"kv_cache_dtype": None, "kv_formats": kv_cache_dtype}


@click.command(
    epilog="""\b
Examples:
  adaptgate run ./Qwen3-8B-FP8 --target ascend-a2 --device 910b4
  adaptgate run ./model --target cpu --only inspect,report
  adaptgate run ./model --target cpu --kv-formats fp8_e4m3,fp8_e5m2   # the verdict picks the cache
  adaptgate run ./model --target cuda --kv-cache-dtype fp8_e4m3       # launch with it (tested too)
Rerunning into the same --run-dir resumes from the first gate not passed."""
)
@click.argument("model")
@target_option(required=True)
@device_option
@devices_option
@release_option
@max_model_len_option()
@gpu_memory_utilization_option
@click.option("--run-dir", type=click.Path(path_type=Path), help="Default: runs/<model>-<target>.")
@click.option("--only", multiple=True, help="Run only these gates (comma-separated).")
@click.option("--skip", multiple=True, help="Skip these gates (comma-separated).")
@click.option("--fresh", is_flag=True, help="Start the run directory over instead of resuming.")
@allow_pickle_option
@click.option(
    "--convert-to",
    help="bf16, fp16 or w8a8-dynamic; several comma-separated, the first is served "
    "(default: the route inspect recommends); +w8a8-dynamic converts after the route too.",
)
@click.option(
    "--url",
    help="Use this already running OpenAI-compatible server for the endpoint gates "
    "(e.g. vllm-ascend launched from the runbook) instead of starting vLLM here.",
)
@click.option(
    "--server-log",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="With --url: the server's log file; its vLLM / vllm-ascend versions and launch "
    "arguments are recorded and compared with the plan.",
)
@kv_cache_dtype_option(None, formats_too=True)
@kv_formats_option(
    None,
    ", or all (those the target runs); the kvcache gate tests them and its verdict picks "
    "--kv-cache-dtype [default: ADAPTGATE_KVCACHE, else only when the plan would use a quantized "
    "cache]",
)
@click.option(
    "--accuracy-baseline",
    type=click.Path(exists=True, path_type=Path),
    help="The accuracy gate's baseline: an accuracy result JSON or a run directory whose "
    "accuracy gate ran (e.g. the BF16 route's run) [default: none, the gate is INCONCLUSIVE].",
)
@max_memory_option
@click.option(
    "--strict",
    is_flag=True,
    help="Exit 1 when a gate is INCONCLUSIVE (its measurement stayed invalid), not only on FAIL.",
)
@output_options
@handle_errors
def command(
    model: str,
    target: str,
    device: str | None,
    devices: int,
    release: str | None,
    max_model_len: int | None,
    gpu_memory_utilization: float | None,
    run_dir: Path | None,
    only: tuple[str, ...],
    skip: tuple[str, ...],
    fresh: bool,
    allow_pickle: bool,
    convert_to: str | None,
    url: str | None,
    server_log: Path | None,
    kv_cache_dtype: str | None,
    kv_formats: str | None,
    accuracy_baseline: Path | None,
    max_memory: int | None,
    strict: bool,
    out: Output,
) -> int:
    """Run every gate on MODEL for a target and write run.json and the report."""
    if server_log is not None and not url:
        raise UsageError(
            "--server-log describes a server given by --url",
            fix="add --url URL of the server that wrote the log, or drop --server-log",
        )
    if convert_to:
        from adaptgate.settings import parse_convert_to

        parse_convert_to("--convert-to", convert_to)
    if release is not None:  # an unknown release is bad input: refused before anything runs
        from adaptgate.inspect.releases import resolve_release

        release = resolve_release(target, release).release
    from adaptgate.pipeline.runner import RunOptions, exit_code_of, run_pipeline

    settings = RunSettings(
        model=model,
        target=target,
        device=device,
        devices=devices,
        release=release,
        max_model_len=max_model_len,
        gpu_memory_utilization=gpu_memory_utilization,
        allow_pickle=allow_pickle,
        convert_to=convert_to,
        url=url,
        server_log=str(server_log.resolve()) if server_log else None,
        accuracy_baseline=str(accuracy_baseline.resolve()) if accuracy_baseline else None,
        max_memory=max_memory,
        **_kv_cache(kv_cache_dtype, kv_formats),
    )
    name = Path(model.rstrip("/")).name or "model"
    run_dir = run_dir or Path("runs") / f"{name.replace('/', '--')}-{target}"
    opts = RunOptions(settings, run_dir, _split(only), _split(skip), fresh)
    record = run_pipeline(opts, out)
    emit_json(out, record.to_json())
    if out.human:
        click.echo(f"run: {record.verdict.value} - {run_dir / 'run.json'}")
        if record.verdict.value == "SKIPPED":
            why = [f"{g.name}: {g.reason}" for g in record.gates if g.name not in RENDERING]
            click.echo(
                "error: no gate measured anything, so this run is not a PASS: " + "; ".join(why),
                err=True,
            )
        for gate in record.gates:
            if gate.status.value == "INCONCLUSIVE":
                click.echo(
                    f"warning: {gate.name} is INCONCLUSIVE ({gate.reason})"
                    + ("" if strict else "; not a failure of the model (--strict makes it one)"),
                    err=True,
                )
        report = run_dir / "REPORT.md"
        if report.exists():
            click.echo(f"report: {report}")
    return exit_code_of(record, strict=strict)
