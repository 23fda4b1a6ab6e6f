class NPUPlatform:
    @classmethod
    def get_attn_backend_cls(cls, selected_backend, head_size, dtype):
        return "vllm_ascend.attention.attention_v1.AscendAttentionBackend"
