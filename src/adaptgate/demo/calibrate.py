"""Static activation calibration for the per-tensor FP8 preset: |x| maxima per Linear input.

Runs the bf16 master through transformers on lines of the demo corpus, tokenized with the
master's own tokenizer. Dense Linears are observed with forward pre-hooks. transformers 5 fuses
MoE experts into 3-D parameters, so for each experts module the routed tokens are taken from its
inputs and each expert's gate/up and down inputs are computed from the master weights. The MTP
layer is not part of the transformers model; its modules take the maxima of the same modules of
the last decoder layer.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptgate.checkpoint.writer import save_tensors
from adaptgate.demo.master import Master, write_json
from adaptgate.demo.tokenizer import corpus_lines

if TYPE_CHECKING:
    import torch

CALIBRATION_LINES = 8
MAX_TOKENS = 128


def _calibration_ids(master: Master) -> list[list[int]]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(master.tokenizer_files["tokenizer.json"])
    lines = corpus_lines()
    step = max(1, len(lines) // CALIBRATION_LINES)
    chunks = ["\n".join(lines[i : i + step]) for i in range(0, len(lines), step)]
    return [tok.encode(chunk).ids[:MAX_TOKENS] for chunk in chunks[:CALIBRATION_LINES]]


def _expert_hook(master: Master, prefix: str, amax: dict[str, float]) -> Any:
    import torch

    def hook(_module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        hidden, top_k_index = args[0].float(), args[1]
        for e in range(master.dims.experts):
            routed = (top_k_index == e).any(dim=-1)
            x = hidden[routed] if bool(routed.any()) else hidden
            name = f"{prefix}.{e}"
            wg = master.tensors[f"{name}.gate_proj.weight"].float()
            wu = master.tensors[f"{name}.up_proj.weight"].float()
            act = torch.nn.functional.silu(x @ wg.T) * (x @ wu.T)
            xin = float(x.abs().max())
            for proj in ("gate_proj", "up_proj"):
                key = f"{name}.{proj}"
                amax[key] = max(amax.get(key, 0.0), xin)
            key = f"{name}.down_proj"
            amax[key] = max(amax.get(key, 0.0), float(act.abs().max()))

    return hook


def _load_quietly(master: Master) -> Any:
    """The bf16 master as a transformers model (its MTP layer is reported unexpected: hidden)."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with tempfile.TemporaryDirectory(prefix="adaptgate-calib-") as tmp:
            save_tensors(master.tensors, tmp)
            write_json(Path(tmp) / "config.json", master.config)
            model = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.bfloat16)
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    return model.eval()


def input_amax(master: Master) -> dict[str, float]:
    """|x| maximum of the input of every quantized Linear, keyed by module name."""
    import torch

    amax: dict[str, float] = {}
    model = _load_quietly(master)
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):

            def record(_m: torch.nn.Module, args: tuple[Any, ...], key: str = name) -> None:
                amax[key] = max(amax.get(key, 0.0), float(args[0].abs().max()))

            handles.append(module.register_forward_pre_hook(record))
        elif name.endswith(".mlp.experts") and hasattr(module, "gate_up_proj"):
            handles.append(module.register_forward_pre_hook(_expert_hook(master, name, amax)))
    with torch.no_grad():
        for ids in _calibration_ids(master):
            model(torch.tensor([ids]))
    for handle in handles:
        handle.remove()
    last = master.dims.layers - 1
    for module in master.quantized_modules():
        if module not in amax:
            twin = re.sub(r"^model\.layers\.\d+\.", f"model.layers.{last}.", module)
            amax[module] = amax.get(twin, 0.0)
    missing = [m for m in master.quantized_modules() if amax.get(m, 0.0) <= 0.0]
    if missing:
        raise RuntimeError(f"calibration saw no input for {missing[:3]}")
    return amax
