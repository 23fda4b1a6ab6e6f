"""The margin a clean run leaves under every judged threshold, from its run.json.

For each limit the gates evaluated (precision: conversion and served checks; kvcache: every
format's checks, simulated and on the engine), the tightest value measured and the headroom:
``limit / value`` for a ``max`` limit, ``(1 - limit) / (1 - value)`` for a ``min`` limit on a
metric whose ideal is 1 (cosine, agreement rates). Headroom > 1 passes; the smaller it is, the
closer the clean model came to failing. Used to calibrate thresholds.yaml on the real SmolLM2.

    python benchmarks/threshold_margins.py RUN_DIR/run.json
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any


def headroom(check: dict[str, Any]) -> float | None:
    value, limit = check.get("value"), check.get("threshold")
    if value is None or limit is None or math.isnan(value):
        return None
    if check.get("bound") == "max":
        return math.inf if value <= 0 else limit / value
    if limit >= 1:  # a rate that must be 1: met or not
        return math.inf if value >= 1 else 0.0
    return math.inf if value >= 1 else (1 - limit) / (1 - value)


def checks_of(run: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    gates = {g["name"]: g for g in run["gates"]}
    precision = (gates.get("precision") or {}).get("result") or {}
    for part in ("conversion", "served"):
        for c in (precision.get(part) or {}).get("checks") or []:
            out.append((f"precision {part}", c))
    kv = (gates.get("kvcache") or {}).get("result") or {}
    for fmt in kv.get("formats") or []:
        for c in fmt.get("checks") or []:
            out.append((f"kvcache {fmt['format']} simulated", c))
        for c in (fmt.get("on_engine") or {}).get("checks") or []:
            out.append((f"kvcache {fmt['format']} engine", c))
    return out


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    run = json.loads(Path(sys.argv[1]).read_text())
    tightest: dict[tuple[str, str, str, float], tuple[float, dict[str, Any]]] = {}
    for section, c in checks_of(run):
        room = headroom(c)
        if room is None:
            continue
        key = (section, c["metric"], c["bound"], c["threshold"])
        if key not in tightest or room < tightest[key][0]:
            tightest[key] = (room, c)
    print("| check | limit | tightest clean value (where) | headroom |")
    print("|---|---|---|---|")
    for (section, metric, bound, limit), (room, c) in tightest.items():
        op = "<=" if bound == "max" else ">="
        where = c.get("subject", "")
        room_text = "met" if math.isinf(room) else f"{room:.3g}x"
        value = f"{c['value']:.4g} ({where})"
        print(f"| {section}: {metric} | {op} {limit:g} | {value} | {room_text} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
