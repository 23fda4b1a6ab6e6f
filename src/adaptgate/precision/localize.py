"""Where the error appears: the first layer whose hidden state fails its limits, or where an
error metric jumps by more than allowed from the previous dumped layer.

Errors accumulate with depth, so an absolute limit alone can name a layer after the broken one
(the broken layer adds a large error that crosses the limit only later). The jump limit names
the layer that *adds* the error; whichever fails first along the depth is the localized layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from adaptgate.metrics.limits import Check, Limit, evaluate

if TYPE_CHECKING:
    from adaptgate.precision.compare import TensorRow

DEPTH_METRIC = "rel_l2"


class DepthPoint(BaseModel):
    name: str
    layer: int | None
    rel_l2: float
    cosine: float
    jump: float = Field(description="rel_l2 minus the previous point's (0 for the first)")


class Localization(BaseModel):
    layer: int | None = Field(default=None, description="the localized decoder layer")
    module: str | None = None
    name: str | None = Field(default=None, description="embed or layer.<i> that failed first")
    criterion: str | None = None
    largest_jump_layer: int | None = None
    largest_jump: float | None = None
    depth: list[DepthPoint] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list, exclude=True)


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
            loc.criterion = failed[0].describe()
        loc.checks += checks
        previous = row
    return loc
