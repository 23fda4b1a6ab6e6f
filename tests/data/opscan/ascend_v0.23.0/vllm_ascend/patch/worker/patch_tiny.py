from vllm.model_executor.layers.attention import Attention as _Target

from vllm_ascend.attention import ascend_attention_forward

_PATCH_TARGET = _Target
_PATCH_TARGET.forward = ascend_attention_forward
