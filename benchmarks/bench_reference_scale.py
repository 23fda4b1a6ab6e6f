"""Gates at real sizes (issue 17 item 4): cost against the number of continuation tokens.

On a synthetic checkpoint with a real model's shapes (random weights, the demo tokenizer; written
by ``bench_reference.write_model``, by default in the FP8 block format of Qwen3-*-FP8), each part
runs once per token count -- the reference parts also once per memory budget -- each run in its
own child process so peak RSS (the child's ru_maxrss) is that run's. Measured per run: wall time
of the child, its own run time, user and system CPU time, passes over the weights and bytes read
(from the part's own result), peak RSS, and the 1-minute load average before it (the machine may
be shared). The ratio column is the run time against the first run of the same group and budget,
measured in the same invocation: the prompt-only pass for the reference parts, the smallest token
count for kvcache.

Parts:
- ``forced``: ``adaptgate reference --stream-layers --max-memory B`` with N given continuation
  tokens per prompt (a passage of the demo corpus), scored teacher-forced
  (``ReferenceSession.score``): one pass. N = 0 is the prompt-only pass.
- ``greedy``: the old path, ``--max-new-tokens N`` greedy decoding: one pass per token.
- ``kvcache``: ``adaptgate kvcache --mode teacher-forced --stream-layers`` (every format and the
  baseline in one layer-streamed pass along the built-in forced texts, cut to N tokens); it takes
  no memory budget (the default one).
- ``forced-whole``, ``greedy-whole``: the same with MoE layers loading all their experts, as
  before routed experts were read by group (the baseline of a MoE shape).
- ``precision``: the precision gate's reference work, as ``PrecisionGate.run`` does it with a
  server: the source checkpoint scores N given tokens per prompt (the server's continuation),
  then the BF16 conversion (``adaptgate convert --to bf16``, made once before the runs and not
  timed) scores the same text (``continuations_from``), then ``compare_dumps``. One child.

    python benchmarks/bench_reference_scale.py --shape 4b --parts forced,greedy --budgets 0,default
    python benchmarks/bench_reference_scale.py --shape 0.6b --format bf16 --parts kvcache
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# real shapes of Qwen3 (embeddings untied as in the 4B/8B checkpoints); the MoE layers are
# Qwen3-30B-A3B's and Qwen3-235B-A22B's (--layers keeps the first N: their depth exceeds the disk)
SHAPES: dict[str, dict[str, int]] = {
    "0.6b": {"hidden": 1024, "inter": 3072, "layers": 28, "vocab": 151936, "heads": 16, "kv": 8,
             "head_dim": 128},
    "4b": {"hidden": 2560, "inter": 9728, "layers": 36, "vocab": 151936, "heads": 32, "kv": 8,
           "head_dim": 128},
    "8b": {"hidden": 4096, "inter": 12288, "layers": 36, "vocab": 151936, "heads": 32, "kv": 8,
           "head_dim": 128},
    "30b-a3b": {"hidden": 2048, "inter": 6144, "layers": 48, "vocab": 151936, "heads": 32, "kv": 4,
                "head_dim": 128, "experts": 128, "top_k": 8, "moe_inter": 768},
    "235b-a22b": {"hidden": 4096, "inter": 12288, "layers": 94, "vocab": 151936, "heads": 64,
                  "kv": 4, "head_dim": 128, "experts": 128, "top_k": 8, "moe_inter": 1536},
}  # fmt: skip

KVCACHE_CHILD = """
import json, sys, time
from adaptgate.kvcache.api import run_kvcache
from adaptgate.kvcache.models import KVCacheConfig
t0 = time.perf_counter()
r = run_kvcache(KVCacheConfig(model=sys.argv[1], new_tokens=int(sys.argv[2]), mode="teacher-forced",
                              stream=True, plot=False))
print(json.dumps({"seconds": time.perf_counter() - t0, "passes": r.weights.passes,
                  "bytes_read": r.weights.bytes_read, "positions": r.formats[0].logits.positions,
                  "load_seconds": r.timings.load_seconds,
                  "pass_seconds": r.timings.simulate_seconds,
                  "verdicts": {f.format: f.verdict for f in r.formats}}))
"""

# argv: model, forced|greedy|precision[-whole], tokens, budget (bytes or "default"); dumps go to a
# temp dir. "-whole": MoE layers load all their experts (the way before routed experts by group)
REFERENCE_CHILD = """
import json, sys, tempfile, time
from importlib import resources
from pathlib import Path
from adaptgate.reference.api import ReferenceConfig, build_reference, encoded_prompts
from adaptgate.reference.session import load_tokenizer
from adaptgate.reference.skeleton import LayeredModel
model, path, n, budget = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if path.endswith("-whole"):
    LayeredModel.stream_experts = lambda self: None
    path = path.removesuffix("-whole")
t0 = time.perf_counter()
extra = {}
with tempfile.TemporaryDirectory() as out:
    cfg = ReferenceConfig(model=model, out=Path(out) / "source", stream=True, max_new_tokens=n,
                          max_memory=None if budget == "default" else int(budget))
    if path in ("forced", "precision"):
        text = resources.files("adaptgate.demo").joinpath("corpus.txt").read_text("utf-8")
        ids = load_tokenizer(Path(model))(text, add_special_tokens=False)["input_ids"][:n]
        assert len(ids) == n, f"the corpus has {len(ids)} tokens"
        forced = [ids] * len(encoded_prompts(cfg))
        cfg = ReferenceConfig(**cfg.model_dump() | {"continuations": forced})
    t = build_reference(cfg).timings
    if path == "precision":  # the converted model scores the source dump's text, then compare
        from adaptgate.precision.compare import compare_dumps
        conv = ReferenceConfig(**cfg.model_dump() | {
            "model": model + "-bf16", "out": Path(out) / "converted", "continuations": None,
            "continuations_from": cfg.out})
        c = build_reference(conv).timings
        t1 = time.perf_counter()
        verdict = compare_dumps(cfg.out, conv.out, profile="quantized").verdict
        extra = {"source_seconds": t.total_seconds, "converted_seconds": c.total_seconds,
                 "compare_seconds": time.perf_counter() - t1, "verdict": verdict}
        t = t.model_copy(update={k: getattr(t, k) + getattr(c, k) for k in (
            "passes", "bytes_read_total", "load_seconds", "forward_seconds")})
print(json.dumps({"seconds": time.perf_counter() - t0, "passes": t.passes,
                  "bytes_read": t.bytes_read_total, "bytes_read_per_pass": t.bytes_read_per_pass,
                  "load_seconds": t.load_seconds,
                  "pass_seconds": t.forward_seconds, "cache_bytes": t.cache_bytes,
                  "budget_bytes": t.memory_budget_bytes} | extra))
"""


def kvcache_child(model: Path, tokens: int, _budget: str) -> list[str]:
    return [sys.executable, "-c", KVCACHE_CHILD, str(model), str(tokens)]


def reference_child(path: str) -> Callable[[Path, int, str], list[str]]:
    def command(model: Path, tokens: int, budget: str) -> list[str]:
        return [sys.executable, "-c", REFERENCE_CHILD, str(model), path, str(tokens), budget]

    return command


@dataclass(frozen=True)
class Part:
    command: Callable[[Path, int, str], list[str]]  # (model, tokens, budget) -> the child's argv
    tokens: tuple[int, ...]  # token counts run when --tokens is not given
    group: str  # ratios are against the group's first run under the same budget
    budgeted: bool = True  # runs once per --budgets entry


# part name -> how to run it; the child's last stdout line is a JSON object
PARTS: dict[str, Part] = {
    "forced": Part(reference_child("forced"), (0, 32), "reference"),
    "greedy": Part(reference_child("greedy"), (8,), "reference"),
    "kvcache": Part(kvcache_child, (32, 128, 512), "kvcache", budgeted=False),
    "precision": Part(reference_child("precision"), (32,), "precision"),
    "forced-whole": Part(reference_child("forced-whole"), (0, 32), "reference-whole"),
    "greedy-whole": Part(reference_child("greedy-whole"), (8,), "reference-whole"),
}


def bf16_of(model: Path) -> Path:
    """``MODEL-bf16``: where the precision part's converted model lives (its child reads it
    there)."""
    return model.with_name(model.name + "-bf16")


def converted(model: Path) -> Path:
    """The precision part's converted model, made once and kept with the model."""
    out = bf16_of(model)
    if not (out / "config.json").exists():
        cli = Path(sys.executable).with_name("adaptgate")
        subprocess.run([str(cli), "convert", str(model), str(out), "--to", "bf16", "-q",
                        "--no-source-hash"], check=True)  # fmt: skip
    return out


def write(model: Path, shape: dict[str, int], *, fp8: bool) -> None:
    """``write_model`` in a child: a child's peak RSS starts from its parent's RSS when it
    forks, so this process must not grow by writing the model before it measures children."""
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "import json; from pathlib import Path; from bench_reference import write_model; "
        "write_model(Path(sys.argv[1]), **json.loads(sys.argv[2]), fp8=sys.argv[3] == '1')"
    )
    subprocess.run([sys.executable, "-c", code, str(model), json.dumps(shape), str(int(fp8))],
                   check=True)  # fmt: skip


def measure(cmd: list[str]) -> dict[str, object]:
    """Runs the child with its output in files (a pipe left unread could fill and block it)."""
    load = os.getloadavg()[0]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        if status != 0:
            raise SystemExit(f"child failed ({status}): {err.read()[-2000:]}")
        row: dict[str, object] = json.loads(out.read().strip().splitlines()[-1])
    return row | {
        "wall_seconds": wall,
        "user_seconds": usage.ru_utime,
        "system_seconds": usage.ru_stime,
        "minor_faults": usage.ru_minflt,
        "peak_rss_bytes": usage.ru_maxrss * 1024,  # KiB on Linux
        "load_before": load,
    }


def _f(row: dict[str, object], key: str) -> float:
    value = row[key]
    assert isinstance(value, int | float), (key, value)
    return float(value)


def summary(rows: list[dict[str, object]]) -> list[str]:
    """Per budget: each reference run against the prompt-only pass, and the cost per token."""
    lines = []
    for budget in dict.fromkeys(str(r["budget"]) for r in rows if r["group"] == "reference"):
        runs = [r for r in rows if r["group"] == "reference" and r["budget"] == budget]
        base = next((r for r in runs if r["part"] == "forced" and r["tokens"] == 0), None)
        for r in runs:
            n = int(_f(r, "tokens"))
            if base is None or r is base or n == 0:
                continue
            extra = (_f(r, "seconds") - _f(base, "seconds")) / n
            lines.append(
                f"budget {budget}: {r['part']} {n} tokens = "
                f"{_f(r, 'seconds') / _f(base, 'seconds'):.2f}x the prompt-only pass, "
                f"{extra:+.2f} s per token"
            )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="0.6b")
    ap.add_argument("--format", choices=("fp8", "bf16"), default="fp8")
    ap.add_argument("--parts", default=",".join(PARTS))
    ap.add_argument("--tokens", help="comma-separated token counts [default: each part's own]")
    ap.add_argument(
        "--budgets", default="0,default", help="--max-memory values of the reference parts, bytes"
    )
    ap.add_argument("--layers", type=int, help="keep the shape's first N layers")
    ap.add_argument("--workdir", type=Path, help="where the checkpoint goes [default: a temp dir]")
    ap.add_argument("--keep", action="store_true", help="keep the checkpoint")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    shape = SHAPES[args.shape] | ({"layers": args.layers} if args.layers else {})
    model = work / f"qwen3-{args.shape}-{shape['layers']}l-{args.format}"
    t0 = time.perf_counter()
    if not (model / "config.json").exists():
        write(model, shape, fp8=args.format == "fp8")
    size = sum(f.stat().st_size for f in model.glob("*.safetensors"))
    print(f"{model}: {size / 1e9:.2f} GB, written in {time.perf_counter() - t0:.0f} s")
    print(f"{'part':12} {'budget':>8} {'tokens':>6} {'wall s':>7} {'run s':>7} {'x':>5} "
          f"{'passes':>6} {'GB read':>7} {'user s':>7} {'sys s':>6} {'RSS GB':>6} {'load':>5}",
          flush=True)  # fmt: skip
    rows: list[dict[str, object]] = []
    bases: dict[tuple[str, str], float] = {}
    try:
        if "precision" in args.parts.split(","):
            converted(model)
        for name in args.parts.split(","):
            part = PARTS[name]
            counts = [int(t) for t in args.tokens.split(",")] if args.tokens else part.tokens
            for budget in args.budgets.split(",") if part.budgeted else ["default"]:
                for n in counts:
                    row = measure(part.command(model, n, budget))
                    base = bases.setdefault((part.group, budget), _f(row, "seconds"))
                    row |= {"part": name, "group": part.group, "budget": budget, "tokens": n,
                            "model_gb": size / 1e9}  # fmt: skip
                    rows.append(row)
                    print(
                        f"{name:12} {budget:>8} {n:6d} {_f(row, 'wall_seconds'):7.1f} "
                        f"{_f(row, 'seconds'):7.1f} {_f(row, 'seconds') / base:5.2f} "
                        f"{_f(row, 'passes'):6.2f} {_f(row, 'bytes_read') / 1e9:7.2f} "
                        f"{_f(row, 'user_seconds'):7.1f} {_f(row, 'system_seconds'):6.1f} "
                        f"{_f(row, 'peak_rss_bytes') / 1e9:6.2f} {_f(row, 'load_before'):5.2f}",
                        flush=True,
                    )
    finally:
        if not args.keep:
            shutil.rmtree(model, ignore_errors=True)
            shutil.rmtree(bf16_of(model), ignore_errors=True)
    for line in summary(rows):
        print(line)
    print(json.dumps({"shape": args.shape, "layers": shape["layers"], "format": args.format,
                      "runs": rows}))  # fmt: skip


if __name__ == "__main__":
    main()
