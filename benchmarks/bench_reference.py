"""Benchmark of the reference forward (issue 4).

1. Speed: the full-load reference forward (teacher-forced, every layer's hidden state captured)
   against plain transformers doing the same forward on the same model (``from_pretrained`` in
   float32, ``model(input_ids)`` per prompt), measured in the same run. Target: <= 1.3x.
2. Memory: peak RSS of a layer-streamed reference against a full-load one on a synthetic bf16
   checkpoint of at least 2 GB, each in its own process (VmHWM), with their times. Target: < 30%.

    python benchmarks/bench_reference.py [--workdir DIR] [--size-gb 2.1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEED_MODEL = {"hidden": 512, "inter": 1536, "layers": 8, "vocab": 16384, "heads": 8, "kv": 4}


def write_model(out: Path, *, hidden: int, inter: int, layers: int, vocab: int, heads: int,
                kv: int, head_dim: int | None = None, fp8: bool = False, experts: int = 0,
                top_k: int = 0, moe_inter: int = 0) -> Path:  # fmt: skip
    """A Qwen3 checkpoint with random bf16 weights, the demo tokenizer, sharded at ~1 GB.

    ``head_dim`` defaults to ``hidden // heads``. ``fp8``: the decoder layers' Linear weights in
    the fine-grained FP8 block format of Qwen3-*-FP8 (float8_e4m3fn + ``weight_scale_inv``,
    128x128 blocks, quantized by adaptgate's own ``quantize_fp8_block``); embeddings, norms and
    the LM head stay bf16, as in the real checkpoints. ``experts``: a Qwen3-MoE checkpoint
    (``mlp.gate`` router, kept bf16 as in Qwen3-*-A*-FP8, and ``experts`` experts of
    ``moe_inter``, ``top_k`` per token, named ``mlp.experts.<e>.*``) instead of a dense MLP."""
    import torch
    from safetensors.torch import save_file

    from adaptgate.demo.tokenizer import write_tokenizer
    from adaptgate.formats import fp8_block, names

    out.mkdir(parents=True, exist_ok=True)
    head_dim = head_dim or hidden // heads
    block = (128, 128)
    config = {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": hidden,
        "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv, "head_dim": head_dim, "vocab_size": vocab,
        "max_position_embeddings": 4096, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "tie_word_embeddings": False, "torch_dtype": "bfloat16", "hidden_act": "silu",
        "attention_bias": False, "eos_token_id": 2902, "bos_token_id": 2900,
    }  # fmt: skip
    if experts:
        config |= {
            "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
            "num_experts": experts, "num_experts_per_tok": top_k,
            "moe_intermediate_size": moe_inter, "decoder_sparse_step": 1, "mlp_only_layers": [],
            "norm_topk_prob": True,
        }  # fmt: skip
    if fp8:
        config["quantization_config"] = fp8_block.quantization_config(block)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    write_tokenizer(out)
    gen = torch.Generator().manual_seed(0)

    def w(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=gen) / math.sqrt(shape[-1])).to(torch.bfloat16)

    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (vocab, hidden),
        "model.norm.weight": (hidden,),
        "lm_head.weight": (vocab, hidden),
    }
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes |= {
            p + "self_attn.q_proj.weight": (heads * head_dim, hidden),
            p + "self_attn.k_proj.weight": (kv * head_dim, hidden),
            p + "self_attn.v_proj.weight": (kv * head_dim, hidden),
            p + "self_attn.o_proj.weight": (hidden, heads * head_dim),
            p + "self_attn.q_norm.weight": (head_dim,),
            p + "self_attn.k_norm.weight": (head_dim,),
            p + "input_layernorm.weight": (hidden,),
            p + "post_attention_layernorm.weight": (hidden,),
        }
        mlp = [(f"{p}mlp.", inter)]
        if experts:
            shapes[p + "mlp.gate.weight"] = (experts, hidden)
            mlp = [(f"{p}mlp.experts.{e}.", moe_inter) for e in range(experts)]
        for prefix, width in mlp:
            shapes |= {
                prefix + "gate_proj.weight": (width, hidden),
                prefix + "up_proj.weight": (width, hidden),
                prefix + "down_proj.weight": (hidden, width),
            }
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = total = 0
    for name, shape in shapes.items():
        t = torch.ones(shape, dtype=torch.bfloat16) if len(shape) == 1 else w(*shape)
        tensors = {name: t}
        router = name.endswith("mlp.gate.weight")
        if fp8 and len(shape) == 2 and name.startswith("model.layers.") and not router:
            q, scale = fp8_block.quantize_fp8_block(t, block)
            tensors = {name: q, name.replace(".weight", f".{names.SCALE_INV}"): scale}
        if size > 1 << 30:
            shards.append({})
            size = 0
        shards[-1] |= tensors
        nbytes = sum(x.numel() * x.element_size() for x in tensors.values())
        size += nbytes
        total += nbytes
    weight_map = {}
    for k, shard in enumerate(shards, start=1):
        fname = f"model-{k:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(out / fname), metadata={"format": "pt"})
        weight_map |= dict.fromkeys(shard, fname)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return out


def bench_speed(model: Path, repeat: int) -> dict[str, float]:
    import torch
    from transformers import AutoModelForCausalLM

    from adaptgate.reference.prompts import builtin_prompts, encode_prompts
    from adaptgate.reference.session import ReferenceSession

    session = ReferenceSession(str(model), stream=False)
    prompts = encode_prompts(builtin_prompts(), session.tokenizer)
    plain = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
    ids = [torch.tensor([p.token_ids]) for p in prompts]
    capture = set(range(session.lm.num_layers))
    ours, theirs = [], []
    session.run(prompts, max_new_tokens=0, capture=capture)  # warm-up both
    with torch.inference_mode():
        for t in ids:
            plain(t)
    for _ in range(repeat):
        t0 = time.perf_counter()
        session.run(prompts, max_new_tokens=0, capture=capture)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with torch.inference_mode():
            for t in ids:
                plain(t)
        theirs.append(time.perf_counter() - t0)
    return {
        "tokens": sum(len(p.token_ids) for p in prompts),
        "reference_s": statistics.median(ours),
        "transformers_s": statistics.median(theirs),
        "ratio": statistics.median(ours) / statistics.median(theirs),
    }


def _child(model: str, stream: bool, out: str) -> None:
    """One reference run in this process; prints its JSON line (time, peak RSS)."""
    from adaptgate.reference.api import ReferenceConfig, build_reference

    t0 = time.perf_counter()
    meta = build_reference(
        ReferenceConfig(model=model, out=Path(out), stream=stream, max_new_tokens=4)
    )
    assert meta.timings is not None
    print(json.dumps({
        "stream": stream, "seconds": time.perf_counter() - t0,
        "load_s": meta.timings.load_seconds, "forward_s": meta.timings.forward_seconds,
        "peak_rss": meta.timings.peak_rss_bytes,
    }))  # fmt: skip


def bench_memory(model: Path, workdir: Path) -> dict[str, dict[str, float]]:
    results = {}
    for stream in (False, True):
        argv = [sys.executable, __file__, "--child", str(model), str(stream)]
        done = subprocess.run(
            [*argv, str(workdir / f"d{stream}")], capture_output=True, text=True, check=True
        )
        results["streamed" if stream else "full"] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--size-gb", type=float, default=2.1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1] == "True", args.child[2])
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-reference-"))
    speed_model = workdir / "speed-model"
    if not (speed_model / "config.json").exists():
        write_model(speed_model, **SPEED_MODEL)
    speed = bench_speed(speed_model, args.repeat)
    print(
        f"speed ({SPEED_MODEL['layers']} layers, hidden {SPEED_MODEL['hidden']}, "
        f"{speed['tokens']} prompt tokens): reference {speed['reference_s']:.3f} s, "
        f"transformers {speed['transformers_s']:.3f} s, ratio {speed['ratio']:.2f}x "
        f"(target <= 1.3x)"
    )
    # hidden 2048, 3x MLP; layers chosen for the size asked (bf16 bytes)
    per_layer = 2 * (2 * 2048 * 2048 + 2 * 2048 * 1024 + 3 * 2048 * 6144)
    layers = max(1, math.ceil((args.size_gb * 1e9 - 2 * 2 * 16384 * 2048) / per_layer))
    big = workdir / "big-model"
    if not (big / "config.json").exists():
        write_model(big, hidden=2048, inter=6144, layers=layers, vocab=16384, heads=16, kv=8)
    size = sum(f.stat().st_size for f in big.glob("*.safetensors"))
    mem = bench_memory(big, workdir)
    full, streamed = mem["full"], mem["streamed"]
    print(
        f"memory ({size / 1e9:.2f} GB bf16 checkpoint, {layers} layers, float32 compute): "
        f"full-load peak RSS {full['peak_rss'] / 2**30:.2f} GiB in {full['seconds']:.1f} s "
        f"(load {full['load_s']:.1f} s), layer-streamed {streamed['peak_rss'] / 2**30:.2f} GiB "
        f"in {streamed['seconds']:.1f} s (load {streamed['load_s']:.1f} s): "
        f"{streamed['peak_rss'] / full['peak_rss']:.0%} of full (target < 30%)"
    )


if __name__ == "__main__":
    main()
