"""``conversion.json``: what was converted, from what, with which error statistics."""

from __future__ import annotations

import re
from collections import defaultdict

from adaptgate.convert.models import ConversionPlan, ErrorEntry, ErrorStats, TensorRecord
from adaptgate.convert.work import TensorStats

_LAYER = re.compile(r"^(.*?\.layers\.\d+)\.")


def error_stats(plan: ConversionPlan, stats: dict[str, TensorStats]) -> ErrorStats:
    out = ErrorStats()
    layers: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    total = [0.0, 0.0]
    for t in plan.tensors:
        s = stats[t.name]
        out.saturated += s.saturated
        out.underflow += s.underflow
        out.nonfinite += s.nonfinite
        if s.rel_error is not None and s.err_sq is not None and s.ref_sq is not None:
            out.int8_tensors.append(
                ErrorEntry(name=t.name, rel_error=s.rel_error, max_abs_error=s.max_abs_error)
            )
            match = _LAYER.match(t.name)
            key = match.group(1) if match else t.name.rsplit(".", 2)[0]
            layers[key][0] += s.err_sq
            layers[key][1] += s.ref_sq
            total[0] += s.err_sq
            total[1] += s.ref_sq
    out.int8_tensors.sort(key=lambda e: -e.rel_error)
    out.int8_layers = sorted(
        (ErrorEntry(name=k, rel_error=(e / r) ** 0.5) for k, (e, r) in layers.items() if r > 0),
        key=lambda e: -e.rel_error,
    )
    if total[1] > 0:
        out.int8_rel_error = (total[0] / total[1]) ** 0.5
    return out


def tensor_records(plan: ConversionPlan, stats: dict[str, TensorStats]) -> list[TensorRecord]:
    return [
        TensorRecord(
            name=t.name,
            action=t.action.value,
            source=t.source,
            source_dtype=t.source_dtype,
            source_shape=t.source_shape,
            dtype=t.dtype,
            shape=t.shape,
            shard=t.shard,
            checksum=stats[t.name].checksum,
            saturated=stats[t.name].saturated,
            underflow=stats[t.name].underflow,
            nonfinite=stats[t.name].nonfinite,
            rel_error=stats[t.name].rel_error,
            max_abs_error=stats[t.name].max_abs_error,
        )
        for t in plan.tensors
    ]
