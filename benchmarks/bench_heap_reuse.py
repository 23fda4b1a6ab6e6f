"""Streamed reference pass with and without heap reuse between layers (issue 17 item 1).

``adaptgate.reference.memory.reusing_heap`` makes each streamed layer's weights reuse the pages
the last layer freed (glibc: no mmap for large blocks, no trim until the layers are done). The
baseline is the same pass with it replaced by a no-op: every large block a fresh mmap whose pages
fault when first written, every freed unit trimmed. Each run is its own child process
(``adaptgate reference --stream-layers --max-memory 0``, prompt-only, the built-in prompts), the
two modes alternate, and the ratio is of medians in this invocation.

    python benchmarks/bench_heap_reuse.py MODEL_DIR [--repeats 2]

MODEL_DIR: e.g. a checkpoint written by ``bench_reference_scale.py --keep`` (Qwen3-shaped FP8).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, resource, sys, tempfile, time
from contextlib import nullcontext
from pathlib import Path
import adaptgate.reference.engine
from adaptgate.reference.api import ReferenceConfig, build_reference
if sys.argv[2] == "off":
    adaptgate.reference.engine.reusing_heap = nullcontext
t0 = time.perf_counter()
with tempfile.TemporaryDirectory() as out:
    cfg = ReferenceConfig(model=sys.argv[1], out=Path(out) / "d", stream=True, max_memory=0,
                          max_new_tokens=0)
    t = build_reference(cfg).timings
r = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.perf_counter() - t0, "user": r.ru_utime, "sys": r.ru_stime,
                  "faults": r.ru_minflt, "rss": r.ru_maxrss * 1024, "read": t.bytes_read_total}))
"""


def run(model: Path, mode: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(model), mode], check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    row: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return row | {"load": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    rows: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    print(f"{'mode':4} {'s':>6} {'user s':>7} {'sys s':>6} {'faults M':>8} {'RSS GB':>6} "
          f"{'load':>5}")  # fmt: skip
    for _ in range(args.repeats):
        for mode in ("off", "on"):
            r = run(args.model, mode)
            rows[mode].append(r)
            print(f"{mode:4} {r['seconds']:6.1f} {r['user']:7.1f} {r['sys']:6.1f} "
                  f"{r['faults'] / 1e6:8.2f} {r['rss'] / 1e9:6.2f} {r['load']:5.2f}",
                  flush=True)  # fmt: skip
    med = {m: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for m, rs in rows.items()}
    print(
        f"heap reuse: {med['on']['seconds'] / med['off']['seconds']:.2f}x the time, "
        f"{med['on']['sys'] / med['off']['sys']:.2f}x the system time, "
        f"{med['on']['faults'] / med['off']['faults']:.2f}x the page faults, "
        f"{med['on']['rss'] / med['off']['rss']:.2f}x the peak RSS (medians)"
    )
    print(json.dumps({"model": str(args.model), "runs": rows}))


if __name__ == "__main__":
    main()
