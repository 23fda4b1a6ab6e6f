ASCEND_QUANTIZATION_METHOD = "ascend"
REGISTERED_ASCEND_OPS = {}


def register_ascend_customop(vllm_config=None):
    from vllm.model_executor.custom_op import CustomOp

    from vllm_ascend.ops.activation import AscendSiluAndMul
    from vllm_ascend.ops.layernorm import AscendRMSNorm
    from vllm_ascend.ops.linear import AscendQKVParallelLinear, AscendRowParallelLinear

    global REGISTERED_ASCEND_OPS  # noqa: PLW0603 (the pattern mirrored)
    REGISTERED_ASCEND_OPS = {
        "SiluAndMul": AscendSiluAndMul,
        "RowParallelLinear": AscendRowParallelLinear,
        "QKVParallelLinear": AscendQKVParallelLinear,
        "RMSNorm": AscendRMSNorm,
    }

    for name, op_cls in REGISTERED_ASCEND_OPS.items():
        CustomOp.register_oot(_decorated_op_cls=op_cls, name=name)
