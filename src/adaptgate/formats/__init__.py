"""Quantization formats: the facts of each on-disk layout and the quantize side of it.

- :mod:`adaptgate.formats.fp8_block` -- fine-grained FP8 block (``quant_method: fp8``,
  ``weight_scale_inv``), as Qwen3-*-FP8 and DeepSeek-V3 ship it.
- :mod:`adaptgate.formats.compressed_tensors` -- llm-compressor / compressed-tensors FP8 presets
  (FP8, FP8_DYNAMIC, FP8_BLOCK), produced with the compressed-tensors library itself.
- :mod:`adaptgate.formats.ascend` -- Ascend msModelSlim W8A8_DYNAMIC (int8 weights,
  ``quant_model_description.json``), as vllm-ascend loads it with ``--quantization ascend``.

Modules import torch lazily inside functions; importing this package is cheap.
"""
