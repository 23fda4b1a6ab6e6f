ASCEND_QUANTIZATION_METHOD = "ascend"
FP8_METHOD = "fp8"
REGISTERED_ASCEND_OPS = {}


def vllm_version_is(version):
    return False


def register_ascend_customop(vllm_config=None):
    from vllm.model_executor.custom_op import CustomOp

    from vllm_ascend.ops.activation import AscendSiluAndMul
    from vllm_ascend.ops.layernorm import AscendRMSNorm
    from vllm_ascend.ops.linear import AscendQKVParallelLinear, AscendRowParallelLinear
    from vllm_ascend.ops.rotary_embedding import AscendRotaryEmbedding

    global REGISTERED_ASCEND_OPS  # noqa: PLW0603 (the pattern mirrored)
    REGISTERED_ASCEND_OPS = {
        "SiluAndMul": AscendSiluAndMul,
        "RotaryEmbedding": AscendRotaryEmbedding,
        "RowParallelLinear": AscendRowParallelLinear,
        "QKVParallelLinear": AscendQKVParallelLinear,
        "RMSNorm": AscendRMSNorm,
    }
    if vllm_version_is("0.23.0"):
        from vllm_ascend.ops.fused_moe.fused_moe import AscendFusedMoE

        REGISTERED_ASCEND_OPS["FancyNorm"] = AscendFusedMoE

    for name, op_cls in REGISTERED_ASCEND_OPS.items():
        CustomOp.register_oot(_decorated_op_cls=op_cls, name=name)
