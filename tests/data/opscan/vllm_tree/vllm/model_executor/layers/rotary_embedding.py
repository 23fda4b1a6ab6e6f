from vllm.model_executor.custom_op import CustomOp


@CustomOp.register("rotary_embedding")
class RotaryEmbedding(CustomOp):
    pass


def get_rope(head_size, max_position) -> RotaryEmbedding:
    return RotaryEmbedding()
