"""FP8 -> BF16 conversion: naive seed script vs adaptgate vs the disk floor, in one run.

Builds a synthetic fine-grained FP8 checkpoint with the exact tensor shapes of
Qwen3-4B-Thinking-2507-FP8 (36 layers, hidden 2560, intermediate 9728, 32 q / 8 kv heads,
head_dim 128, vocab 151936, embed_tokens and lm_head in bf16, float16 block scales; one
model.safetensors of 5.19 GB), then measures, each in a child process:

- naive: what the seed script does (load_file the whole file, reshape/permute dequantization in
  float32, save_file the whole dict);
- adaptgate: ``adaptgate convert SRC OUT --to bf16`` (streaming, default options);
- disk floor: ``dd`` reading the input and ``dd`` writing as many bytes as the output (buffered
  with fdatasync, and both with O_DIRECT; the faster one counts).

For each: wall time, peak RSS of the child (wait4), output GB/s. Page caches are dropped before
each measurement when running as root (``--no-drop-caches`` to keep them). ``--scale 0.25``
builds a model with a quarter of the layers and of the vocabulary (same per-layer shapes).

    python benchmarks/bench_convert.py                 # the full 5.19 GB model
    python benchmarks/bench_convert.py --scale 0.1     # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

HIDDEN, INTER, HEADS, KV_HEADS, HEAD_DIM, VOCAB, LAYERS = 2560, 9728, 32, 8, 128, 151936, 36
BLOCK = 128


def qwen3_4b_tensors(scale: float) -> list[tuple[str, str, tuple[int, ...]]]:
    """(name, dtype, shape) in checkpoint order; FP8 weights followed by their scales."""
    layers = max(1, round(LAYERS * scale))
    vocab = max(BLOCK, round(VOCAB * scale))
    out: list[tuple[str, str, tuple[int, ...]]] = [
        ("model.embed_tokens.weight", "BF16", (vocab, HIDDEN))
    ]
    q, kv = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    for i in range(layers):
        p = f"model.layers.{i}"
        linears = [
            (f"{p}.self_attn.q_proj", q, HIDDEN),
            (f"{p}.self_attn.k_proj", kv, HIDDEN),
            (f"{p}.self_attn.v_proj", kv, HIDDEN),
            (f"{p}.self_attn.o_proj", HIDDEN, q),
            (f"{p}.mlp.gate_proj", INTER, HIDDEN),
            (f"{p}.mlp.up_proj", INTER, HIDDEN),
            (f"{p}.mlp.down_proj", HIDDEN, INTER),
        ]
        for name, n, k in linears:
            out.append((f"{name}.weight", "F8_E4M3", (n, k)))
            out.append((f"{name}.weight_scale_inv", "F16", (-(-n // BLOCK), -(-k // BLOCK))))
        out += [
            (f"{p}.input_layernorm.weight", "BF16", (HIDDEN,)),
            (f"{p}.post_attention_layernorm.weight", "BF16", (HIDDEN,)),
            (f"{p}.self_attn.q_norm.weight", "BF16", (HEAD_DIM,)),
            (f"{p}.self_attn.k_norm.weight", "BF16", (HEAD_DIM,)),
        ]
    out += [("model.norm.weight", "BF16", (HIDDEN,)), ("lm_head.weight", "BF16", (vocab, HIDDEN))]
    return out


def _config(scale: float) -> dict[str, object]:
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "hidden_size": HIDDEN,
        "intermediate_size": INTER,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM,
        "num_hidden_layers": max(1, round(LAYERS * scale)),
        "vocab_size": max(BLOCK, round(VOCAB * scale)),
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "quantization_config": {
            "quant_method": "fp8",
            "fmt": "e4m3",
            "activation_scheme": "dynamic",
            "weight_block_size": [BLOCK, BLOCK],
        },
    }


def _fill(rng: np.random.Generator, dtype: str, n_bytes: int) -> bytes:
    raw = rng.integers(0, 256, n_bytes, dtype=np.uint8)
    if dtype == "F8_E4M3":
        raw[(raw & 0x7F) == 0x7F] ^= 1  # no NaN codes
        return raw.tobytes()
    if dtype == "F16":  # positive scales around 1e-3
        vals = rng.uniform(2e-4, 4e-3, n_bytes // 2).astype(np.float16)
        return vals.tobytes()
    bits = raw.view(np.uint16) & np.uint16(0x807F) | np.uint16(0x3C00)  # bf16 ~ +-0.008..0.016
    return bits.tobytes()


def build_checkpoint(root: Path, scale: float, seed: int = 0) -> int:
    """Writes model.safetensors + config.json, streaming (memory: one tensor chunk)."""
    tensors = qwen3_4b_tensors(scale)
    sizes = {"F8_E4M3": 1, "F16": 2, "BF16": 2}
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, dtype, shape in tensors:
        n = int(np.prod(shape)) * sizes[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    body = json.dumps(header, separators=(",", ":")).encode()
    body += b" " * (-len(body) % 8)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    chunk = 64 << 20
    with (root / "model.safetensors").open("wb") as fh:
        fh.write(struct.pack("<Q", len(body)) + body)
        for _, dtype, shape in tensors:
            n = int(np.prod(shape)) * sizes[dtype]
            for start in range(0, n, chunk):
                fh.write(_fill(rng, dtype, min(chunk, n - start)))
    (root / "config.json").write_text(json.dumps(_config(scale), indent=2))
    (root / "generation_config.json").write_text('{"do_sample": true}\n')
    (root / "tokenizer_config.json").write_text('{"model_max_length": 262144}\n')
    return (root / "model.safetensors").stat().st_size


CLI = "import sys; from adaptgate.cli.convert import command; command(sys.argv[1:])"
NAIVE = r"""
import json, os, shutil, sys
import torch
from safetensors.torch import load_file, save_file
SRC, DST = sys.argv[1], sys.argv[2]
BLOCK_SIZE = (128, 128)
def dequantize_blockwise(weight_fp8, scale_inv, block_size=(128, 128)):
    out_features, in_features = weight_fp8.shape
    out_blocks = out_features // block_size[0]
    in_blocks = in_features // block_size[1]
    weight_blocks = weight_fp8.reshape(out_blocks, block_size[0], in_blocks, block_size[1])
    weight_blocks = weight_blocks.permute(0, 2, 1, 3)
    dequantized = weight_blocks.float() * scale_inv.unsqueeze(-1).unsqueeze(-1)
    dequantized = dequantized.permute(0, 2, 1, 3).reshape(out_features, in_features)
    return dequantized.to(torch.bfloat16)
os.makedirs(DST, exist_ok=True)
for fname in os.listdir(SRC):
    if fname != "model.safetensors":
        shutil.copy2(os.path.join(SRC, fname), os.path.join(DST, fname))
config = json.load(open(os.path.join(DST, "config.json")))
config.pop("quantization_config", None)
config["torch_dtype"] = "bfloat16"
json.dump(config, open(os.path.join(DST, "config.json"), "w"), indent=2)
state_dict = load_file(os.path.join(SRC, "model.safetensors"))
keys_to_remove = []
for key in list(state_dict.keys()):
    if key.endswith("_scale_inv"):
        continue
    if state_dict[key].dtype == torch.float8_e4m3fn:
        scale_key = f"{key}_scale_inv"
        if scale_key in state_dict:
            w, s = state_dict[key], state_dict[scale_key]
            state_dict[key] = dequantize_blockwise(w, s, BLOCK_SIZE)
            keys_to_remove.append(scale_key)
for key in keys_to_remove:
    del state_dict[key]
save_file(state_dict, os.path.join(DST, "model.safetensors"))
"""


@dataclass
class Measure:
    name: str
    seconds: float
    peak_rss_mb: float
    output_bytes: int
    cpu_seconds: float = 0.0  # user + system of the child: robust to other load on the host

    @property
    def gb_per_s(self) -> float:
        return self.output_bytes / self.seconds / 1e9


def drop_caches(enabled: bool) -> bool:
    if not enabled:
        return False
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def run_child(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MB) and CPU seconds of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed ({status}): {' '.join(cmd)}")
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*.safetensors"))


def measure_floor(src: Path, out_bytes: int, work: Path, drop: bool) -> list[Measure]:
    count = max(1, out_bytes // (16 << 20))
    results = []
    for label, rflags, wflags in (
        ("buffered+fdatasync", [], ["conv=fdatasync"]),
        ("O_DIRECT", ["iflag=direct"], ["oflag=direct"]),
    ):
        drop_caches(drop)
        r, rss_r, cpu_r = run_child(
            ["dd", f"if={src}", "of=/dev/null", "bs=16M", "status=none", *rflags]
        )
        target = work / "floor.bin"
        w, rss_w, cpu_w = run_child(
            [
                "dd",
                "if=/dev/zero",
                f"of={target}",
                "bs=16M",
                f"count={count}",
                "status=none",
                *wflags,
            ]
        )
        target.unlink()
        results.append(
            Measure(
                f"disk floor (dd, {label})",
                r + w,
                max(rss_r, rss_w),
                count * (16 << 20),
                cpu_r + cpu_w,
            )
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of layers and vocab")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/adaptgate-bench-convert"))
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--no-drop-caches", action="store_true")
    parser.add_argument("--workers", type=int, help="adaptgate --workers")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    parser.add_argument("--compare", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.compare:  # in a child, so torch never inflates the parent's RSS
        raise SystemExit(0 if _same_tensors(*args.compare) else 1)
    drop = not args.no_drop_caches
    work = args.workdir
    src = work / f"src-{args.scale}"
    if not (src / "config.json").exists():
        shutil.rmtree(src, ignore_errors=True)
        t0 = time.perf_counter()
        size = build_checkpoint(src, args.scale)
        print(f"built {src} ({size / 1e9:.2f} GB) in {time.perf_counter() - t0:.1f} s")
    in_bytes = (src / "model.safetensors").stat().st_size
    results: list[Measure] = []
    py = sys.executable

    out = work / "out-adaptgate"
    for label, extra in (("", []), (" --no-source-hash", ["--no-source-hash"])):
        shutil.rmtree(out, ignore_errors=True)
        dropped = drop_caches(drop)
        cmd = [py, "-c", CLI, str(src), str(out), "--to", "bf16", "--quiet", *extra]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        seconds, rss, cpu = run_child(cmd)
        out_bytes = dir_bytes(out)
        results.append(Measure(f"adaptgate convert --to bf16{label}", seconds, rss, out_bytes, cpu))
    record = json.loads((out / "conversion.json").read_text())

    if not args.skip_naive:
        naive_out = work / "out-naive"
        shutil.rmtree(naive_out, ignore_errors=True)
        drop_caches(drop)
        seconds, rss, cpu = run_child([py, "-c", NAIVE, str(src), str(naive_out)])
        results.append(Measure("naive (seed script)", seconds, rss, dir_bytes(naive_out), cpu))
        same = (
            subprocess.run(
                [py, __file__, "--compare", str(naive_out), str(out)], check=False
            ).returncode
            == 0
        )
        shutil.rmtree(naive_out)
    else:
        same = None
    shutil.rmtree(out)
    results += measure_floor(src / "model.safetensors", out_bytes, work, drop)

    print(
        f"\nmachine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}; caches dropped: {dropped}; kernel: {record['kernel']}"
    )
    print(f"input {in_bytes / 1e9:.2f} GB -> output {out_bytes / 1e9:.2f} GB (scale {args.scale})")
    print(f"{'run':38} {'wall s':>8} {'CPU s':>7} {'peak RSS MB':>12} {'out GB/s':>9}")
    for m in results:
        print(
            f"{m.name:38} {m.seconds:8.1f} {m.cpu_seconds:7.1f} {m.peak_rss_mb:12.0f}"
            f" {m.gb_per_s:9.2f}"
        )
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    floor = min((m for m in results if m.name.startswith("disk floor")), key=lambda m: m.seconds)
    naive = next((m for m in results if m.name.startswith("naive")), None)
    print()
    for ours in (m for m in results if m.name.startswith("adaptgate")):
        line = f"{ours.name}: {ours.seconds / floor.seconds:.2f}x the disk floor time"
        if naive:
            line += f", {naive.seconds / ours.seconds:.2f}x faster than naive"
        print(line)
    if naive:
        print(f"naive output bit-identical to adaptgate: {same}")
    if args.json:
        payload = {
            "scale": args.scale,
            "input_bytes": in_bytes,
            "output_bytes": out_bytes,
            "caches_dropped": dropped,
            "kernel": record["kernel"],
            "results": [asdict(m) | {"gb_per_s": m.gb_per_s} for m in results],
        }
        args.json.write_text(json.dumps(payload, indent=2))


def _same_tensors(a: Path, b: Path) -> bool:
    """Every tensor of the naive output equals adaptgate's, bit for bit."""
    import torch
    from safetensors import safe_open

    index = (
        json.loads((b / "model.safetensors.index.json").read_text())["weight_map"]
        if (b / "model.safetensors.index.json").exists()
        else None
    )
    with safe_open(str(a / "model.safetensors"), framework="pt") as fa:
        for name in fa.keys():  # noqa: SIM118 - safe_open has no __iter__
            file = index[name] if index else "model.safetensors"
            with safe_open(str(b / file), framework="pt") as fb:
                x, y = fa.get_tensor(name), fb.get_tensor(name)
            if x.dtype != y.dtype or not torch.equal(x.view(torch.int16), y.view(torch.int16)):
                return False
    return True


if __name__ == "__main__":
    main()
