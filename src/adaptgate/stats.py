"""The one shared ``Distribution`` model: every latency (or other sampled) metric is one of these.

The percentile method is part of the value: two tools that both print "p99 TTFT" can differ by
their method alone (vLLM interpolates linearly; EvalScope takes an upper-biased nearest rank), so
every Distribution names the method that produced it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

PercentileMethod = Literal["linear", "nearest_rank"]

METHOD_DESCRIPTIONS: dict[str, str] = {
    "linear": "linear interpolation between closest ranks (numpy 'linear', Hyndman-Fan type 7; "
    "what vllm bench serve uses)",
    "nearest_rank": "nearest rank, the smallest value with at least q% of values at or below it "
    "(numpy 'inverted_cdf', Hyndman-Fan type 1)",
}
# the same in Chinese, for reports in that language
METHOD_DESCRIPTIONS_ZH: dict[str, str] = {
    "linear": "在最近的两个秩之间线性插值（numpy 'linear'，Hyndman-Fan 第 7 类；"
    "`vllm bench serve` 所用的方法）",
    "nearest_rank": "最近秩：至少 q% 的值不大于它的最小值（numpy 'inverted_cdf'，Hyndman-Fan "
    "第 1 类）",
}
_NUMPY_METHOD: dict[str, Literal["linear", "inverted_cdf"]] = {
    "linear": "linear",
    "nearest_rank": "inverted_cdf",
}
QUANTILES = (50, 90, 95, 99)


class Distribution(BaseModel):
    """count, mean, std (population), min, p50, p90, p95, p99, max of a sample; None when empty."""

    model_config = ConfigDict(frozen=True)

    count: int = 0
    mean: float | None = None
    std: float | None = Field(default=None, description="population standard deviation (ddof=0)")
    min: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    percentile_method: PercentileMethod = "linear"
    unit: str | None = None

    @classmethod
    def of(
        cls,
        values: Iterable[float],
        *,
        method: PercentileMethod = "linear",
        unit: str | None = None,
    ) -> Distribution:
        """The distribution of ``values``; non-finite values (NaN, inf) are dropped."""
        arr = np.asarray([float(v) for v in values], dtype=np.float64)
        arr = arr[np.isfinite(arr)]
        if arr.size == 0:
            return cls(percentile_method=method, unit=unit)
        qs = np.percentile(arr, list(QUANTILES), method=_NUMPY_METHOD[method])
        return cls(
            count=int(arr.size),
            mean=float(arr.mean()),
            std=float(arr.std()),
            min=float(arr.min()),
            p50=float(qs[0]),
            p90=float(qs[1]),
            p95=float(qs[2]),
            p99=float(qs[3]),
            max=float(arr.max()),
            percentile_method=method,
            unit=unit,
        )

    @property
    def method_description(self) -> str:
        return METHOD_DESCRIPTIONS[self.percentile_method]

    def scaled(self, factor: float, unit: str | None = None) -> Distribution:
        """The same distribution in another unit (e.g. seconds -> ms with factor 1000)."""

        def s(v: float | None) -> float | None:
            return None if v is None else v * factor

        return Distribution(
            count=self.count,
            mean=s(self.mean),
            std=None if self.std is None else self.std * abs(factor),
            min=s(self.min) if factor >= 0 else s(self.max),
            p50=s(self.p50),
            p90=s(self.p90),
            p95=s(self.p95),
            p99=s(self.p99),
            max=s(self.max) if factor >= 0 else s(self.min),
            percentile_method=self.percentile_method,
            unit=unit if unit is not None else self.unit,
        )

    def get(self, stat: str) -> float | None:
        """A statistic by name: 'mean', 'median' (= p50), 'p99', 'max', ..."""
        name = "p50" if stat == "median" else stat
        value = getattr(self, name, None)
        if value is None or (isinstance(value, (int, float)) and math.isnan(value)):
            return None
        return float(value)
