"""Regenerate ``run_cpu.json`` (not run by the tests): the tiny FP8 Qwen3 demo model through every
gate with ``--target cpu`` and the real vLLM CPU build (``ADAPTGATE_VLLM_PYTHON``, default
/work/vllm-venv/bin/python), kvcache asked for (``ADAPTGATE_KVCACHE=1``). Takes a few minutes.

    .venv/bin/python tests/unit/report/data/make_run_cpu.py
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

OUT = Path(__file__).parent / "run_cpu.json"
GATES = {
    "inspect": "adaptgate.pipeline.gates:InspectGate",
    "convert": "adaptgate.convert.gate:ConvertGate",
    "serve": "adaptgate.serve.gate:ServeGate",
    "smoke": "adaptgate.checks.gate:SmokeGate",
    "precision": "adaptgate.precision.gate:PrecisionGate",
    "kvcache": "adaptgate.kvcache.gate:KVCacheGate",
    "bench": "adaptgate.bench.gate:BenchGate",
    "report": "adaptgate.pipeline.gates:ReportGate",
}


def main() -> None:
    from adaptgate.demo import make_model
    from adaptgate.demo.spec import make_spec
    from adaptgate.pipeline import runner
    from adaptgate.pipeline.record import RunSettings

    os.environ.setdefault("ADAPTGATE_VLLM_PYTHON", "/work/vllm-venv/bin/python")
    os.environ["ADAPTGATE_KVCACHE"] = "1"
    tmp = Path(tempfile.mkdtemp())
    model = make_model(tmp / "model", make_spec(arch="qwen3", format="fp8_block"))
    runner.GATES = dict(GATES)  # every gate, whichever the pipeline registers today
    settings = RunSettings(model=str(model), target="cpu")
    record = runner.run_pipeline(runner.RunOptions(settings, tmp / "run", fresh=True))
    text = record.to_json().replace(str(tmp / "run"), "runs/Qwen3-tiny-FP8-cpu")
    text = text.replace(str(tmp / "model"), "/models/Qwen3-tiny-FP8")
    OUT.write_text(json.dumps(json.loads(text), indent=1, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote {OUT}: {record.verdict.value}")


if __name__ == "__main__":
    main()
