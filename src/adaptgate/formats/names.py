"""The tensor-name suffixes of every quantized layout adaptgate reads, in one place.

``<module>.weight`` holds the codes; beside it ``weight_scale_inv`` (fine-grained FP8: Qwen3-*-FP8,
DeepSeek-V3 -- a multiplier despite its name), ``weight_scale`` (compressed-tensors, Ascend
msModelSlim) and ``weight_offset`` (msModelSlim). Activation and KV-cache scales mean nothing
once weights are dequantized (or int8 with dynamic activations) and are dropped.
"""

WEIGHT = "weight"
SCALE_INV = "weight_scale_inv"
SCALE = "weight_scale"
OFFSET = "weight_offset"
SCALE_SUFFIXES = (SCALE_INV, SCALE)
DROPPED_SUFFIXES = ("input_scale", "output_scale", "k_scale", "v_scale", "weight_zero_point")
