"""The operator gate: which operators a model's code uses, statically (ast, nothing imported),
and whether a vllm-ascend release registers or patches each one."""

from adaptgate.inspect.opscan.models import FoundOp, OperatorScan, ScanRow
from adaptgate.inspect.opscan.scan import scan_model, scan_operators

__all__ = ["FoundOp", "OperatorScan", "ScanRow", "scan_model", "scan_operators"]
