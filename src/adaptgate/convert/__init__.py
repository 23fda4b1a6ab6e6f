"""Converting FP8 checkpoints: to BF16/FP16 (exact dequantization) or to Ascend W8A8_DYNAMIC.

``plan_conversion`` pairs every weight with its scale and validates the whole input before a byte
is written; ``run_conversion`` streams the plan into ``OUT.partial/`` (resumable, atomic rename
at the end); ``verify_output`` re-reads an output directory against its plan. Importing this
package does not import torch.
"""
