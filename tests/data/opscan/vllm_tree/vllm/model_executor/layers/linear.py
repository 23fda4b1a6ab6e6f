from vllm.model_executor.custom_op import PluggableLayer


class LinearBase(PluggableLayer):
    pass


@PluggableLayer.register("column_parallel_linear")
class ColumnParallelLinear(LinearBase):
    pass


class QKVParallelLinear(ColumnParallelLinear):
    def __init__(self):
        ColumnParallelLinear.__init__(self)


@PluggableLayer.register("row_parallel_linear")
class RowParallelLinear(LinearBase):
    pass
