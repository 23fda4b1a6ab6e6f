_TEXT_GENERATION_MODELS = {
    "TinyForCausalLM": ("tiny", "TinyForCausalLM"),
    "NovelForCausalLM": ("novel", "NovelForCausalLM"),
}

_VLLM_MODELS = {**_TEXT_GENERATION_MODELS}
