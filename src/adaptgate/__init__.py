"""adaptgate: take a quantized LLM checkpoint to a served, measured vLLM deployment."""

__version__ = "0.1.0"
