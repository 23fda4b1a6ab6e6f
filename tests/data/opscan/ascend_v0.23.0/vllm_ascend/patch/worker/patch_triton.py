import vllm.model_executor.models.novel

from vllm_ascend.ops.triton.novel import novel_gate_kernel_npu

vllm.model_executor.models.novel.novel_gate_kernel = novel_gate_kernel_npu
