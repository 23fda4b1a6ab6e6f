class QuantizationConfig:
    pass
