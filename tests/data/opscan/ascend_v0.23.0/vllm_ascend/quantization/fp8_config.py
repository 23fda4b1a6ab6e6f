from vllm.model_executor.layers.quantization import register_quantization_config

from vllm_ascend.utils import FP8_METHOD


@register_quantization_config(FP8_METHOD)
class AscendFp8Config:
    pass
