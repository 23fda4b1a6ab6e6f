class NPUPlatform:
    @classmethod
    def get_attn_backend_cls(cls, selected_backend, attn_selector_config, num_heads=None):
        return "vllm_ascend.attention.attention_v1.AscendAttentionBackend"
