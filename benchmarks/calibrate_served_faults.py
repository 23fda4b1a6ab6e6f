"""Calibrates the precision gate's served-model thresholds on the real SmolLM2-135M-Instruct.

The clean model and copies with one layer's weight scaled by a factor are served by vLLM CPU
one after the other; each is checked against the CPU FP32 reference of the clean model with
``check_served`` (the ``device`` profile, as the precision gate uses for an exact route). The
table shows every served metric, its limit, and the margin: limit / clean value for a ``max``
limit -- how much room the clean model leaves -- and which faults the limits catch.

    python benchmarks/calibrate_served_faults.py [--work DIR] [--factors 1.02,1.05,1.1,1.25]
        [--weight model.layers.15.mlp.down_proj.weight]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

METRICS = (
    "exact_match_rate",
    "first_mismatch_in_topk",
    "logprob_abs_diff_mean",
    "logprob_abs_diff_max",
    "topk_kl_mean",
)


def plant(source: Path, dest: Path, weight: str, factor: float) -> Path:
    """A copy of ``source`` with ``weight`` multiplied by ``factor`` (in bf16, as stored)."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, dest)
    for shard in sorted(dest.glob("*.safetensors")):
        tensors = load_file(shard)
        if weight in tensors:
            tensors[weight] = (tensors[weight].float() * factor).to(tensors[weight].dtype)
            save_file(tensors, shard, metadata={"format": "pt"})
            return dest
    raise SystemExit(f"{weight} is not in {source}")


def served(model: Path, reference: Path, work: Path) -> dict:
    from adaptgate.precision.models import ServedConfig
    from adaptgate.precision.served import check_served
    from adaptgate.serve.api import serve_model
    from adaptgate.serve.cpus import split_cpus
    from adaptgate.serve.models import PlanOptions, ServeOptions

    split = split_cpus()
    result, server = serve_model(
        ServeOptions(
            plan=PlanOptions(model=str(model), target="cpu", port=0, max_model_len=2048),
            run_dir=work,
            cpus=split.server if split else None,
        ),
        keep=True,
    )
    if server is None:
        raise SystemExit(f"vLLM did not start: {result.reason}")
    try:
        check = check_served(
            ServedConfig(url=result.url, reference=reference, model=result.plan.served_model_name)
        )
    finally:
        server.stop()
    values = check.metrics.model_dump()
    limits = {c.metric: (c.bound, c.threshold, c.passed) for c in check.checks}
    return {
        "verdict": check.verdict,
        "values": values,
        "limits": limits,
        "reason": check.reason.text,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path)
    ap.add_argument("--factors", default="1.02,1.05,1.1,1.25")
    ap.add_argument("--weight", default="model.layers.15.mlp.down_proj.weight")
    args = ap.parse_args()
    from adaptgate.demo import make_model
    from adaptgate.demo.spec import make_spec
    from adaptgate.reference.api import ReferenceConfig, build_reference

    work = args.work or Path(tempfile.mkdtemp(prefix="calibrate-"))
    work.mkdir(parents=True, exist_ok=True)
    clean = work / "clean"
    if not clean.exists():
        make_model(clean, make_spec(source="smollm2", format="bf16"))
    reference = work / "reference"
    if not (reference / "meta.json").exists():
        build_reference(ReferenceConfig(model=str(clean), out=reference))
    rows = []
    for factor in [1.0] + [float(f) for f in args.factors.split(",")]:
        t0 = time.perf_counter()
        model = clean if factor == 1.0 else work / f"x{factor:g}"
        if not model.exists():
            plant(clean, model, args.weight, factor)
        row = served(model, reference, work / f"serve-x{factor:g}")
        row["factor"] = factor
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{args.weight} scaled; device-profile served limits; load {_load()}")
    print("| metric | limit | " + " | ".join(f"x{r['factor']:g}" for r in rows) + " |")
    print("|---|---|" + "---|" * len(rows))
    for metric in METRICS:
        limit = rows[0]["limits"].get(metric)
        bound = "" if limit is None else (">=" if limit[0] == "min" else "<=")
        text = "reported" if limit is None else f"{bound} {limit[1]:g}"
        cells = []
        for r in rows:
            value = r["values"][metric]
            mark = "" if r["limits"].get(metric, (0, 0, True))[2] else " ✗"
            cells.append("-" if value is None else f"{value:.4g}{mark}")
        print(f"| {metric} | {text} | " + " | ".join(cells) + " |")
    print("| verdict | | " + " | ".join(r["verdict"] for r in rows) + " |")
    base = rows[0]["values"]
    for metric in ("logprob_abs_diff_mean", "logprob_abs_diff_max", "topk_kl_mean"):
        limit = rows[0]["limits"].get(metric)
        if limit and base[metric]:
            print(f"clean margin {metric}: limit / clean = {limit[1] / base[metric]:.1f}x")
    return 0


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


if __name__ == "__main__":
    sys.exit(main())
