"""Regenerate ``run_cpu.json`` / ``run_cpu_bf16.json`` (not run by the tests): the tiny Qwen3
demo model (FP8 block / BF16) through every gate with ``--target cpu`` and the real vLLM CPU build
(``ADAPTGATE_VLLM_PYTHON``, default: this interpreter, where ``make`` installs it); for FP8,
kvcache asked for (``ADAPTGATE_KVCACHE=1``). Takes a few minutes each.

    .venv/bin/python tests/unit/report/data/make_run_cpu.py fp8_block   # -> run_cpu.json
    .venv/bin/python tests/unit/report/data/make_run_cpu.py bf16        # -> run_cpu_bf16.json
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

DATA = Path(__file__).parent
OUTPUTS = {
    "fp8_block": ("run_cpu.json", "Qwen3-tiny-FP8"),
    "bf16": ("run_cpu_bf16.json", "Qwen3-tiny-BF16"),
}


def main() -> None:
    from adaptgate.demo import make_model
    from adaptgate.demo.spec import make_spec
    from adaptgate.pipeline import runner
    from adaptgate.record import RunSettings

    fmt = sys.argv[1] if len(sys.argv) > 1 else "fp8_block"
    out, name = OUTPUTS[fmt]
    if fmt == "fp8_block":
        os.environ["ADAPTGATE_KVCACHE"] = "1"
    tmp = Path(tempfile.mkdtemp())
    model = make_model(tmp / "model", make_spec(arch="qwen3", format=fmt))
    # every gate but accuracy (lm-eval on a random-weight model measures nothing)
    runner.GATES = {k: v for k, v in runner.GATES.items() if k != "accuracy"}
    settings = RunSettings(model=str(model), target="cpu")
    record = runner.run_pipeline(runner.RunOptions(settings, tmp / "run", fresh=True))
    text = record.to_json().replace(str(tmp / "run"), f"runs/{name}-cpu")
    text = text.replace(str(tmp / "model"), f"/models/{name}")
    path = DATA / out
    path.write_text(json.dumps(json.loads(text), indent=1, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote {path}: {record.verdict.value}")


if __name__ == "__main__":
    main()
