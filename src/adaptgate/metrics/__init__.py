"""What kvcache and precision both measure with: logit, tensor and generation metrics in float64
(``logits``) and limits as data with their evaluation (``limits``)."""
