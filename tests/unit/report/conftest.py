"""A complete run directory for report tests.

``data/run_full.json`` holds a run of the tiny FP8 Qwen3 demo model with every gate: inspect and
convert (w8a8-dynamic) as those gates wrote them, and serve/smoke/precision/kvcache/bench results
in the shapes their result models define (kvcache SKIPPED, to show a gate that did not run).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

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


def full_record() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "run_full.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    """``make_run(name, edit=None)``: a run directory holding run_full.json (changed by ``edit``,
    a function of the record dict) and the artifacts it references."""

    def build(name: str = "run", edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
        run_dir = tmp_path / name
        run_dir.mkdir()
        record = full_record()
        if edit is not None:
            edit(record)
        (run_dir / "run.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        png(run_dir / "precision" / "layer_error.png")
        png(run_dir / "bench" / "latency.png", (200, 90, 40))
        (run_dir / "bench" / "bench.json").write_text("{}", encoding="utf-8")
        (run_dir / "serve").mkdir()
        (run_dir / "serve" / "vllm.log").write_text("INFO started\n", encoding="utf-8")
        return run_dir

    return build


@pytest.fixture
def full_run(make_run: Callable[..., Path]) -> Path:
    return make_run()


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
