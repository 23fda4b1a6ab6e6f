from vllm.model_executor.layers.quantization.base_config import QuantizationConfig


class Fp8Config(QuantizationConfig):
    pass
