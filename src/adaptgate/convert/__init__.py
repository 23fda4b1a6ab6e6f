"""Converting FP8 checkpoints: to BF16/FP16 (exact dequantization) or to W8A8_DYNAMIC (int8
per-channel weights, dynamic per-token activations) in msModelSlim's layout or compressed-tensors'
(the same int8 weights and scales; :class:`~adaptgate.convert.models.OutputFormat`).

- :func:`adaptgate.convert.plan.plan_conversion` pairs every weight with its scale and lays out
  the output; :mod:`adaptgate.convert.validate` checks scale values and disk space -- all before
  a byte is written.
- :func:`adaptgate.convert.engine.run_conversion` streams the plan into ``OUT.partial/``
  (resumable, renamed to ``OUT`` at the end) and returns the
  :class:`~adaptgate.convert.models.ConversionResult` it writes as ``conversion.json``.
- :func:`adaptgate.convert.verify.verify_output` re-reads an output against its plan.
- :class:`adaptgate.convert.gate.ConvertGate` is the pipeline gate.

Importing this package does not import torch.
"""
