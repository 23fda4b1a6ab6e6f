"""Reading checkpoints: safetensors headers with the standard library, tensors on demand.

Importing this package does not import torch.
"""

from adaptgate.checkpoint.dtypes import SAFETENSORS_DTYPES, DType, dtype_for_torch, torch_dtype_of
from adaptgate.checkpoint.header import (
    MAX_HEADER_SIZE,
    SafetensorsHeader,
    TensorInfo,
    read_safetensors_header,
)
from adaptgate.checkpoint.hf_cache import find_in_hf_cache, hf_hub_cache_dir, resolve_model_path
from adaptgate.checkpoint.jsonfile import load_json_file
from adaptgate.checkpoint.model_dir import Checkpoint, open_checkpoint

__all__ = [
    "MAX_HEADER_SIZE",
    "SAFETENSORS_DTYPES",
    "Checkpoint",
    "DType",
    "SafetensorsHeader",
    "TensorInfo",
    "dtype_for_torch",
    "find_in_hf_cache",
    "hf_hub_cache_dir",
    "load_json_file",
    "open_checkpoint",
    "read_safetensors_header",
    "resolve_model_path",
    "torch_dtype_of",
]
