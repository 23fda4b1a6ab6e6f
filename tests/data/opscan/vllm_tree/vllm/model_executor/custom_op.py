from torch import nn


class CustomOp(nn.Module):
    @classmethod
    def register(cls, name):
        return lambda op: op


class PluggableLayer(nn.Module):
    @classmethod
    def register(cls, name):
        return lambda op: op
