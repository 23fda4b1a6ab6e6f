"""Task accuracy of the real demo model's two routes, served on vLLM CPU: BF16 and W8A8_DYNAMIC
(compressed-tensors int8), both converted from the SmolLM2-135M-Instruct FP8-block demo model.

One run: builds the FP8 demo model (or reuses it in ``--workdir``), converts it to bf16 and to
w8a8-dynamic compressed-tensors, serves each on vLLM CPU in turn (the server on all CPUs but the
last, the accuracy client on the last, so neither queues behind the other), runs ``adaptgate
accuracy URL --json`` on each (W8A8 with the BF16 result as ``--baseline``) and prints route x
task: accuracy, 95% interval, items, difference to BF16 and the verdict.

  .venv/bin/python benchmarks/accuracy_routes.py [--workdir DIR] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROUTES = (  # (route, convert arguments)
    ("bf16", ["--to", "bf16"]),
    ("w8a8-dynamic", ["--to", "w8a8-dynamic", "--format", "compressed-tensors"]),
)
SERVED_NAME = "smollm2"


def adaptgate(*args: str, cpus: tuple[int, ...] | None = None) -> subprocess.CompletedProcess[str]:
    from adaptgate.serve.cpus import cpu_list

    cmd = [sys.executable, "-m", "adaptgate.cli.main", *args]
    if cpus:
        cmd = ["taskset", "-c", cpu_list(cpus), *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):  # 1 is a FAIL verdict, which is a result
        sys.exit(f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def build_checkpoints(work: Path) -> dict[str, Path]:
    source = work / "smollm2-fp8-block"
    if not (source / "config.json").is_file():
        adaptgate("demo-model", str(source), "--from", "smollm2", "--format", "fp8_block", "-q")
    out: dict[str, Path] = {}
    for route, convert_args in ROUTES:
        out[route] = work / f"smollm2-{route}"
        if not (out[route] / "config.json").is_file():
            adaptgate("convert", str(source), str(out[route]), *convert_args, "-q")
    return out


def result_path(work: Path, model: Path) -> Path:
    return work / f"accuracy-{model.name}.json"


def measure(model: Path, python: str, work: Path, args: list[str]) -> dict[str, Any]:
    """Serve ``model`` on vLLM CPU and run ``adaptgate accuracy`` on it from the client CPU."""
    from adaptgate.serve.cpus import OMP_BIND_ENV, cpu_list, split_cpus
    from adaptgate.serve.process import ManagedServer, ServerSpec, free_port

    split = split_cpus()
    env = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CACHE_ROOT": str(work / "vllm-cache")}
    if split:
        env[OMP_BIND_ENV] = cpu_list(split.server)
    port = free_port()
    spec = ServerSpec(
        argv=[python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
              "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(port),
              "--enforce-eager", "--max-model-len", "1024"],
        log_path=work / f"vllm-{model.name}.log",
        port=port,
        env=env,
        served_model_name=SERVED_NAME,
        ready_timeout_s=900,
        cpus=split.server if split else None,
    )  # fmt: skip
    with ManagedServer(spec) as server:
        try:
            server.wait_ready()
        except BaseException:
            print(server.log_text()[-3000:], file=sys.stderr)
            raise
        out = str(result_path(work, model))
        cmd = ["accuracy", server.url, "--model", SERVED_NAME, "--json", "--out", out, *args]
        done = adaptgate(*cmd, cpus=split.client if split else None)
    return dict(json.loads(done.stdout))


def rows(route: str, result: dict[str, Any]) -> list[list[str]]:
    diffs = {c["task"]: c for c in result.get("comparisons", [])}
    table = []
    for t in result["tasks"]:
        c = diffs.get(t["task"])
        table.append([
            route, t["task"], f"{t['accuracy']:.3f}",
            f"[{t['ci']['low']:.3f}, {t['ci']['high']:.3f}]", str(t["samples"]),
            f"{c['difference']:+.3f} (z {c['z']:.2f})" if c else "-",
            c["verdict"] if c else result["verdict"],
        ])  # fmt: skip
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="keeps the checkpoints between runs")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--python",
        default=os.environ.get("ADAPTGATE_VLLM_PYTHON") or sys.executable,
        help="the interpreter with vLLM's CPU build",
    )
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="accuracy-routes-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    checkpoints = build_checkpoints(work)
    results: dict[str, dict[str, Any]] = {}
    baseline: list[str] = []
    for route, _ in ROUTES:
        extra = ["--repeats", str(args.repeats), *baseline]
        results[route] = measure(checkpoints[route], args.python, work, extra)
        # the first route (bf16) is every later route's baseline
        baseline = baseline or ["--baseline", str(result_path(work, checkpoints[route]))]
        print(f"{route}: {results[route]['verdict']} ({results[route]['seconds']:.0f} s)")
    header = ["route", "task", "accuracy", "95% CI", "items", "diff vs bf16", "verdict"]
    table = [r for route, _ in ROUTES for r in rows(route, results[route])]
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in table:
        print("| " + " | ".join(r) + " |")
    w8a8 = results["w8a8-dynamic"]
    print(f"\nW8A8 verdict vs BF16: {w8a8['verdict']}: {w8a8['reason']}")
    print(f"chat template: {w8a8['chat_template']}; lm-eval {w8a8['lm_eval_version']}")
    print(f"total {time.perf_counter() - started:.0f} s; files in {work}")


if __name__ == "__main__":
    main()
