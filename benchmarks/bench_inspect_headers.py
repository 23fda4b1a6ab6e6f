"""How fast does adaptgate read every header of a large sharded checkpoint?

Writes (in a temporary directory) a sharded checkpoint of real safetensors files with many tiny
tensors and an index, then times ``open_checkpoint`` (config, index, every header, validation,
file lists) against a baseline measured in the same run: ``safetensors.safe_open`` on each shard,
listing its keys and every tensor's shape and dtype through ``get_slice``.

    python benchmarks/bench_inspect_headers.py --tensors 20000 --shards 10 --repeat 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TARGET_SECONDS = 1.0


def write_checkpoint(root: Path, n_tensors: int, n_shards: int) -> int:
    """A model directory with ``n_tensors`` tiny tensors over ``n_shards`` shards; returns bytes."""
    import torch
    from safetensors.torch import save_file

    dtypes = [torch.bfloat16, torch.float8_e4m3fn, torch.float32, torch.int8]
    kinds = ["q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight_scale_inv"]
    names = [
        f"model.layers.{i // 64}.mlp.experts.{i % 64}.{kinds[i % 4]}" for i in range(n_tensors)
    ]
    per_shard = -(-n_tensors // n_shards)
    weight_map: dict[str, str] = {}
    total = 0
    for s in range(n_shards):
        file = f"model-{s + 1:05d}-of-{n_shards:05d}.safetensors"
        chunk = names[s * per_shard : (s + 1) * per_shard]
        tensors = {
            name: torch.ones(2, 4 + j % 5, dtype=torch.float32).to(dtypes[j % 4])
            for j, name in enumerate(chunk)
        }
        save_file(tensors, str(root / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(chunk, file))
        total += sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (root / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (root / "config.json").write_text(json.dumps({"model_type": "qwen3_moe", "dtype": "bfloat16"}))
    (root / "tokenizer.json").write_text("{}")
    return total


def baseline(root: Path) -> int:
    """safetensors' own reader: open each shard, list keys, shape and dtype of every tensor."""
    from safetensors import safe_open

    count = 0
    for path in sorted(root.glob("*.safetensors")):
        with safe_open(str(path), "pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not iterable
                sl = f.get_slice(key)
                sl.get_shape()
                sl.get_dtype()
                count += 1
    return count


def adaptgate_open(root: Path) -> int:
    from adaptgate.checkpoint import open_checkpoint

    return len(open_checkpoint(root).tensors)


def timed(fn: Callable[[Path], int], root: Path, repeat: int, expected: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        count = fn(root)
        times.append(time.perf_counter() - start)
        if count != expected:
            raise SystemExit(f"{fn.__name__} saw {count} tensors, expected {expected}")
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tensors", type=int, default=20_000, help="tensors in the checkpoint")
    parser.add_argument("--shards", type=int, default=10, help="safetensors shards")
    parser.add_argument("--repeat", type=int, default=7, help="timed repetitions of each reader")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="adaptgate-bench-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        data = write_checkpoint(root, args.tensors, args.shards)
        print(
            f"wrote {args.tensors} tensors in {args.shards} shards ({data} data bytes) "
            f"in {time.perf_counter() - start:.1f} s"
        )
        adaptgate_open(root)  # warm the page cache and imports for both readers
        baseline(root)
        ours = timed(adaptgate_open, root, args.repeat, args.tensors)
        base = timed(baseline, root, args.repeat, args.tensors)

    med_ours, med_base = statistics.median(ours), statistics.median(base)
    print(
        f"open_checkpoint (headers + index + validation): median {med_ours:.3f} s, "
        f"min {min(ours):.3f} s over {args.repeat} runs"
    )
    print(
        f"baseline safe_open keys + get_slice shape/dtype: median {med_base:.3f} s, "
        f"min {min(base):.3f} s over {args.repeat} runs"
    )
    print(f"ratio adaptgate / baseline (medians): {med_ours / med_base:.2f}x")
    verdict = "met" if med_ours < TARGET_SECONDS else "MISSED"
    print(f"target: under {TARGET_SECONDS:.0f} s for {args.tensors} tensors -> {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
