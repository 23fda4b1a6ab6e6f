"""Where the error appears: the first layer whose hidden state fails its limits, or where an
error metric jumps by more than allowed from the previous dumped layer.

Errors accumulate with depth, so an absolute limit alone can name a layer after the broken one
(the broken layer adds a large error that crosses the limit only later). The jump limit names
the layer that *adds* the error; whichever fails first along the depth is the localized layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adaptgate.metrics.limits import Limit, evaluate
from adaptgate.precision.models import DepthPoint, Localization, TensorRow
from adaptgate.precision.thresholds import limit_failed

if TYPE_CHECKING:
    from adaptgate.precision.models import TensorRow

DEPTH_METRIC = "rel_l2"


def localize(
    depth: list[TensorRow], hidden: dict[str, Limit], jump: dict[str, Limit]
) -> Localization:
    loc = Localization()
    previous: TensorRow | None = None
    for row in depth:
        subject = row.name if row.layer is None else f"layer {row.layer}"
        values: dict[str, float | None] = dict(row.metrics.model_dump())
        checks = evaluate(subject, hidden, values)
        delta = 0.0
        if previous is not None:
            jumps: dict[str, float | None] = {}
            for name in jump:
                base = name.removesuffix("_jump")
                jumps[name] = float(getattr(row.metrics, base) - getattr(previous.metrics, base))
            checks += evaluate(subject, jump, jumps)
            delta = row.metrics.rel_l2 - previous.metrics.rel_l2
        loc.depth.append(
            DepthPoint(
                name=row.name,
                layer=row.layer,
                rel_l2=row.metrics.rel_l2,
                cosine=row.metrics.cosine,
                jump=delta,
            )
        )
        if row.layer is not None and (loc.largest_jump is None or delta > loc.largest_jump):
            loc.largest_jump, loc.largest_jump_layer = delta, row.layer
        failed = [c for c in checks if not c.passed]
        if failed and loc.name is None:
            loc.name, loc.layer, loc.module = row.name, row.layer, row.module
            loc.criterion = limit_failed(failed[0]).said
        loc.checks += checks
        previous = row
    return loc
