"""The outlier plot (PNG): per layer, max |K/scale| and |V/scale| under each format against the
format's largest code, layers at risk marked. One panel per format, log scale."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adaptgate.kvcache.models import KVCacheResult

_FLOOR = 1e-6


def plot_outliers(result: KVCacheResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    formats = result.formats
    layers = [ls.layer for ls in result.scan]
    fig, axes = plt.subplots(
        1, len(formats), figsize=(max(5.0, 0.25 * len(layers) + 3.5) * len(formats), 4.0),
        dpi=110, squeeze=False,
    )  # fmt: skip
    for ax, report in zip(axes[0], formats, strict=True):
        scans = [ls.formats[report.format] for ls in result.scan]
        k = [max(*f.k.amax_scaled, _FLOOR) for f in scans]
        v = [max(*f.v.amax_scaled, _FLOOR) for f in scans]
        limit = scans[0].limit if scans else 1.0
        ax.plot(layers, k, marker="o", label="max |K / scale|")
        ax.plot(layers, v, marker="s", label="max |V / scale|")
        ax.axhline(limit, ls="--", color="red", lw=1, label=f"largest code ({limit:g})")
        risky = [ls.layer for ls, f in zip(result.scan, scans, strict=True) if f.at_risk]
        for i, layer in enumerate(risky):
            ax.axvspan(layer - 0.4, layer + 0.4, color="red", alpha=0.12,
                       label="layer at risk" if i == 0 else None)  # fmt: skip
        ax.set_yscale("log")
        ax.set_xticks(layers, [str(x) for x in layers], fontsize=8,
                      rotation=90 if len(layers) > 32 else 0)  # fmt: skip
        ax.set_xlabel("decoder layer")
        ax.set_ylabel("magnitude in stored units (log)")
        ax.set_title(f"{report.format}: {report.verdict} ({report.scales.source} scales)",
                     fontsize=10)  # fmt: skip
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"KV-cache outliers: {Path(result.model.path).name}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
