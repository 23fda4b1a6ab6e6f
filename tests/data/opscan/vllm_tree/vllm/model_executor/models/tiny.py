from torch import nn

from vllm.model_executor.layers.activation import SiluAndMul
from vllm.model_executor.layers.attention import Attention
from vllm.model_executor.layers.layernorm import RMSNorm
from vllm.model_executor.layers.linear import QKVParallelLinear, RowParallelLinear
from vllm.model_executor.layers.quantization import QuantizationConfig
from vllm.model_executor.layers.rotary_embedding import get_rope


class TinyAttention(nn.Module):
    def __init__(self, quant_config: QuantizationConfig | None = None):
        super().__init__()
        self.qkv_proj = QKVParallelLinear()
        self.o_proj = RowParallelLinear()
        self.rotary_emb = get_rope(64, 4096)
        self.attn = Attention()


class TinyDecoderLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn = TinyAttention()
        self.act = SiluAndMul()
        self.norm = RMSNorm()

    def forward(self, x):
        if isinstance(x, RowParallelLinear):  # a type test builds nothing
            return x
        return self.norm(x)


class TinyForCausalLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([TinyDecoderLayer()])
