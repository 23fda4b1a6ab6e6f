"""The CPU (any-device) FP32 reference: teacher-forced forward, hidden states, the scores of a
given continuation (one pass over the weights) or a greedy continuation (one pass per token).

- :mod:`~adaptgate.reference.api` -- ``build_reference(ReferenceConfig)``: the dump command.
- :mod:`~adaptgate.reference.session` -- ``ReferenceSession``: a loaded model; ``score`` of
  forced continuations and ``run`` (greedy) over prompts (reused by the KV-cache gate with its
  own ``cache_factory``).
- :mod:`~adaptgate.reference.engine` -- the three-phase forward that lets one decoder layer at a
  time serve every prompt (layer-streamed mode) with results identical to a full load.
- :mod:`~adaptgate.reference.kvcache` -- the K/V interception point (after rotary embedding).
- :mod:`~adaptgate.reference.dump` -- the dump format (safetensors + JSON).

Importing this package does not import torch or transformers.
"""
