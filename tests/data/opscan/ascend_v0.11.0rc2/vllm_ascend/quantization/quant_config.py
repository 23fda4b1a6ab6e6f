from vllm.model_executor.layers.quantization import register_quantization_config

from vllm_ascend.utils import ASCEND_QUANTIZATION_METHOD


@register_quantization_config(ASCEND_QUANTIZATION_METHOD)
class AscendQuantConfig:
    pass
