"""The report's sections. Importing this package registers every gate section in
:data:`adaptgate.report.sections.base.SECTIONS` (one per gate kind, rendered from its result)."""

from adaptgate.report.sections import (  # noqa: F401 - imported to register
    accuracy,
    bench,
    convert,
    kvcache,
    model,
    precision,
    serve,
    smoke,
)
from adaptgate.report.sections.base import SECTIONS, Ctx, GateCols, GateSection

__all__ = ["SECTIONS", "Ctx", "GateCols", "GateSection"]
