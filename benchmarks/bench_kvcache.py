"""Benchmark of the KV-cache gate's speed (issue 13, item 4).

The gate as the pipeline runs it (``adaptgate kvcache MODEL --kv-formats fp8_e4m3,fp8_e5m2
--scales checkpoint --new-tokens 256``) on the SmolLM2-135M-Instruct FP8 demo model, timed for
the code of this checkout and for the baseline revision (default 3e8cdd5, before the speed-up),
interleaved in the same run, each in its own process. The baseline's ``src`` is extracted with
``git archive`` into the work directory and put first on ``PYTHONPATH``: the checkout's git state
is not touched. Reports the median wall time of each (process start, model load and simulation),
the median simulation time and CPU time (user + system), the ratios, the load average around
each run, and how far the two results differ: the largest difference of any number in the
formats' reports (KL per format and per step, top-1, generation, scan) and whether the verdicts
are the same. Target: <= 60 s.

    python benchmarks/bench_kvcache.py [--model DIR] [--workdir DIR] [--repeat 2]
        [--baseline-rev 3e8cdd5] [--new-tokens 256]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FORMATS = "fp8_e4m3,fp8_e5m2"


def build_model(workdir: Path) -> Path:
    model = workdir / "smollm2-fp8"
    if not (model / "config.json").exists():
        subprocess.run(
            [sys.executable, "-m", "adaptgate.cli.main", "demo-model", str(model),
             "--from", "smollm2", "--format", "fp8_block", "-q"],
            check=True,
        )  # fmt: skip
    return model


def baseline_tree(workdir: Path, rev: str) -> Path:
    """``rev``'s ``src`` extracted with ``git archive`` (no checkout, no git state changed)."""
    root = workdir / f"baseline-{rev}"
    if not (root / "src" / "adaptgate").is_dir():
        data = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", rev, "src"],
            capture_output=True, check=True,
        ).stdout  # fmt: skip
        with tarfile.open(fileobj=BytesIO(data)) as tar:
            tar.extractall(root, filter="data")
    return root / "src"


def run_gate(
    src: Path, model: Path, out: Path, new_tokens: int, formats_flag: str = "--kv-formats"
) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(src))
    argv = [
        sys.executable, "-m", "adaptgate.cli.main", "kvcache", str(model), formats_flag, FORMATS,
        "--scales", "checkpoint", "--new-tokens", str(new_tokens), "--out", str(out), "-q",
    ]  # fmt: skip
    load_before = os.getloadavg()[0]
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(argv, check=False, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):  # 1: no format SAFE, a verdict like any other
        raise RuntimeError(f"kvcache failed ({done.returncode}): {done.stderr[-2000:]}")
    result = json.loads((out / "kvcache.json").read_text())
    return {
        "wall_s": wall,
        "cpu_s": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
        "simulate_s": result["timings"]["simulate_seconds"],
        "load": (load_before, os.getloadavg()[0]),
        "result": result,
    }


def _numbers(x: Any, path: str = "") -> dict[str, float]:
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return {}
    if isinstance(x, int | float):
        return {path: float(x)}
    if isinstance(x, dict):
        return {k: v for key, item in x.items() for k, v in _numbers(item, f"{path}.{key}").items()}
    if isinstance(x, list):
        return {k: v for i, item in enumerate(x) for k, v in _numbers(item, f"{path}[{i}]").items()}
    return {}


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Largest differences between two kvcache.json results (same model and settings)."""
    out: dict[str, Any] = {"verdicts_equal": True, "kl_mean": {}, "max_abs": 0.0, "where": ""}
    for fa, fb in zip(a["formats"], b["formats"], strict=True):
        out["verdicts_equal"] &= fa["verdict"] == fb["verdict"]
        out["kl_mean"][fa["format"]] = (fa["logits"]["kl_mean"], fb["logits"]["kl_mean"])
        na, nb = _numbers(fa, fa["format"]), _numbers(fb, fb["format"])
        if na.keys() != nb.keys():
            raise ValueError(f"{fa['format']}: the two results have different fields")
        for key in na:
            d = abs(na[key] - nb[key])
            if not (math.isfinite(na[key]) and math.isfinite(nb[key])):
                d = 0.0 if na[key] == nb[key] else math.inf
            if d > out["max_abs"]:
                out["max_abs"], out["where"] = d, key
    na, nb = _numbers(a["scan"], "scan"), _numbers(b["scan"], "scan")
    out["scan_max_abs"] = max((abs(na[k] - nb[k]) for k in na), default=0.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, help="default: build the SmolLM2 FP8 demo model")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--baseline-rev", default="3e8cdd5")
    parser.add_argument("--new-tokens", type=int, default=256)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-kvcache-"))
    workdir.mkdir(parents=True, exist_ok=True)
    model = args.model or build_model(workdir)
    trees = {"baseline": baseline_tree(workdir, args.baseline_rev), "current": REPO / "src"}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for rep in range(args.repeat):
        for name, src in trees.items():
            # the baseline predates --kv-formats: its spelling then, --kv-dtypes
            flag = "--kv-dtypes" if name == "baseline" else "--kv-formats"
            run = run_gate(src, model, workdir / f"{name}-{rep}", args.new_tokens, flag)
            runs[name].append(run)
            print(
                f"{name:8s} run {rep + 1}: {run['wall_s']:6.1f} s wall, simulate "
                f"{run['simulate_s']:6.1f} s, CPU {run['cpu_s']:6.1f} s, "
                f"load {run['load'][0]:.2f} -> {run['load'][1]:.2f}",
                flush=True,
            )
    wall = {name: statistics.median(r["wall_s"] for r in rs) for name, rs in runs.items()}
    sim = {name: statistics.median(r["simulate_s"] for r in rs) for name, rs in runs.items()}
    cpu = {name: statistics.median(r["cpu_s"] for r in rs) for name, rs in runs.items()}
    diff = compare(runs["baseline"][0]["result"], runs["current"][0]["result"])
    settings = runs["current"][0]["result"]["settings"]
    print(
        f"kvcache gate ({FORMATS}, {settings['prompts']} prompts x {args.new_tokens} tokens, "
        f"threads {settings['threads']}), median of {args.repeat}: current {wall['current']:.1f} s "
        f"(simulate {sim['current']:.1f} s), baseline {args.baseline_rev} {wall['baseline']:.1f} s "
        f"(simulate {sim['baseline']:.1f} s): {wall['current'] / wall['baseline']:.2f}x wall, "
        f"{sim['current'] / sim['baseline']:.2f}x simulate (target <= 60 s); CPU time "
        f"{cpu['current']:.1f} s vs {cpu['baseline']:.1f} s: "
        f"{cpu['current'] / cpu['baseline']:.2f}x"
    )
    kl = ", ".join(f"{k} {a:.6g} vs {b:.6g}" for k, (a, b) in diff["kl_mean"].items())
    print(
        f"results: verdicts {'identical' if diff['verdicts_equal'] else 'DIFFER'}; kl_mean {kl}; "
        f"largest difference of any reported number {diff['max_abs']:.3g}"
        + (f" ({diff['where']})" if diff["where"] else "")
        + f"; scan {diff['scan_max_abs']:.3g}"
    )


if __name__ == "__main__":
    main()
