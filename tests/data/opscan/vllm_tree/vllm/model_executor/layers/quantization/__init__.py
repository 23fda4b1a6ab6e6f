from vllm.model_executor.layers.quantization.base_config import QuantizationConfig

__all__ = ["QuantizationConfig"]
