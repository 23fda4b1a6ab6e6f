import torch
import triton
from torch import nn


@triton.jit
def remote_router_kernel(x_ptr, n):
    pass


class RemoteRMSNorm(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))


class RemoteBlock(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.norm = RemoteRMSNorm(hidden)
        self.proj = nn.Linear(hidden, hidden)


class RemoteForCausalLM(nn.Module):
    def __init__(self, hidden=8):
        super().__init__()
        self.embed = nn.Embedding(16, hidden)
        self.blocks = nn.ModuleList([RemoteBlock(hidden)])
