"""Files of a run: the result JSON (first), vllm-compatible JSON, per-request JSONL, CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from adaptgate.bench.models import BenchResult, SweepResult
from adaptgate.bench.timeline import RequestRecord
from adaptgate.results import write_json_atomic, write_text_atomic

RESULT_FILE = "bench.json"
VLLM_FILE = "bench.vllm.json"
REQUESTS_FILE = "requests.jsonl"
CSV_FILE = "bench.csv"
SWEEP_FILE = "sweep.json"

CSV_STATS = ("mean", "p50", "p90", "p99")
CSV_DISTS = (
    "ttft_ms",
    "ttft_first_chunk_ms",
    "tpot_ms",
    "itl_ms",
    "e2el_ms",
    "e2el_incl_queue_ms",
    "decode_speed_tok_s",
    "request_output_tok_s",
)


def write_requests(path: Path, records: Sequence[RequestRecord]) -> Path:
    buf = io.StringIO()
    for r in records:
        buf.write(r.model_dump_json())
        buf.write("\n")
    write_text_atomic(path, buf.getvalue())
    return path


def csv_rows(results: Sequence[BenchResult]) -> list[dict[str, object]]:
    rows = []
    for res in results:
        m = res.metrics
        row: dict[str, object] = {
            "label": res.label or "",
            "validity": res.validity.status,
            "mode": res.config.load.mode,
            "rate": res.config.load.rate,
            "concurrency": res.config.load.concurrency,
            "completed": m.completed,
            "failed": m.failed,
            "duration_s": m.duration_s,
            "request_throughput": m.request_throughput,
            "output_throughput": m.output_throughput,
            "total_token_throughput": m.total_token_throughput,
            "request_goodput": m.request_goodput,
            "peak_concurrency": m.peak_concurrency,
            "mean_concurrency": m.mean_concurrency,
            "output_throughput_per_concurrency": m.output_throughput_per_concurrency,
        }
        for name in CSV_DISTS:
            dist = getattr(m, name)
            for stat in CSV_STATS:
                row[f"{stat}_{name}"] = getattr(dist, stat)
        rows.append(row)
    return rows


def write_csv(path: Path, results: Sequence[BenchResult]) -> Path:
    rows = csv_rows(results)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["label"])
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())
    return path


def write_run(out_dir: Path, result: BenchResult, records: Sequence[RequestRecord]) -> list[Path]:
    """JSON first (the result, with the requests file named in it), then the renderings."""
    out_dir.mkdir(parents=True, exist_ok=True)
    requests = write_requests(out_dir / REQUESTS_FILE, records)
    result.requests_file = requests.name
    files = [result.write_json(out_dir / RESULT_FILE), requests]
    write_json_atomic(out_dir / VLLM_FILE, result.vllm_compat())
    files += [out_dir / VLLM_FILE, write_csv(out_dir / CSV_FILE, [result])]
    return files


def load_result(path: Path) -> BenchResult | SweepResult:
    """A saved bench.json or sweep.json (a directory holding one works too)."""
    from adaptgate.errors import UsageError

    if path.is_dir():
        path = path / (SWEEP_FILE if (path / SWEEP_FILE).exists() else RESULT_FILE)
    if not path.is_file():
        raise UsageError(f"{path} does not exist", fix="pass a bench.json or its directory")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from None
    if data.get("kind") == "bench-sweep":
        return SweepResult.model_validate(data)
    if data.get("kind") != "bench":
        raise UsageError(f"{path} is not an adaptgate bench result (kind {data.get('kind')!r})")
    return BenchResult.model_validate(data)
