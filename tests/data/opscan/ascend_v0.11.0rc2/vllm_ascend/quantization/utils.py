from .w8a8_dynamic import AscendW8A8DynamicLinearMethod

ASCEND_QUANTIZATION_METHOD_MAP = {
    "W8A8_DYNAMIC": {"linear": AscendW8A8DynamicLinearMethod},
}
