"""Run directories for report tests.

``data/run_full.json``: the tiny FP8 Qwen3 demo model for ascend-a2 with every gate (see
``data/make_run_full.py``, which regenerates it): inspect, convert (w8a8-dynamic), the serve plan,
precision, kvcache and bench as those gates' code produced them; the serve stages and the smoke
checks built with their result models (this machine has no NPU).

``data/run_cpu.json``: the same model through ``adaptgate run --target cpu`` on one of these 2-core
machines with the real vLLM CPU build (``data/make_run_cpu.py``): serve FAILS (vLLM CPU's FP8
kernels need AMX, which this CPU lacks) and the doctor names it; the gates after it are SKIPPED.

``data/run_cpu_bf16.json``: the BF16 demo model the same way; every gate that runs PASSES (smoke's
model-quality checks fail, as they must on random weights), with the served-model precision
check and the benchmark against the real vLLM CPU server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"


def png(path: Path, colour: tuple[int, int, int] = (40, 100, 170)) -> None:
    """A small non-blank PNG, as a gate's plot would be."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (320, 200), "white")
    draw = ImageDraw.Draw(img)
    for i in range(8):
        draw.rectangle([20 + 36 * i, 180 - 18 * i, 44 + 36 * i, 180], fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def full_record(source: str = "run_full.json") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / source).read_text(encoding="utf-8"))
    return data


def make_run_dir(
    root: Path,
    name: str = "run",
    edit: Callable[[dict[str, Any]], None] | None = None,
    source: str = "run_full.json",
) -> Path:
    """A run directory holding run_full.json (changed by ``edit``, a function of the record
    dict) and a file for every artifact it references (a PNG for each ``.png``)."""
    run_dir = root / name
    run_dir.mkdir()
    record = full_record(source)
    if edit is not None:
        edit(record)
    (run_dir / "run.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    for i, gate in enumerate(record["gates"]):
        for rel in gate["artifacts"]:
            path = run_dir / rel
            if path.suffix == ".png":
                png(path, ((40 * i) % 256, 100, 170))
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("{}\n", encoding="utf-8")
    return run_dir
