"""The error-versus-depth plot (PNG): relative L2 error and 1 - cosine of the hidden state after
each dumped layer, the limits as dashed lines, the localized layer marked."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adaptgate.precision.models import CompareResult

_FLOOR = 1e-12  # log scale: exact agreement is drawn at the floor


def plot_depth(result: CompareResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = result.localization.depth
    labels = [p.name.replace("layer.", "") for p in points]
    xs = list(range(len(points)))
    rel = [max(p.rel_l2, _FLOOR) for p in points]
    one_minus_cos = [max(1.0 - p.cosine, _FLOOR) for p in points]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(points) + 3), 4.0), dpi=110)
    ax.plot(xs, rel, marker="o", label="relative L2 error")
    ax.plot(xs, one_minus_cos, marker="s", label="1 - cosine")
    hidden = result.thresholds.limits.hidden
    if "rel_l2" in hidden and hidden["rel_l2"].max is not None:
        ax.axhline(hidden["rel_l2"].max, ls="--", color="C0", lw=1, label="rel L2 limit")
    if "cosine" in hidden and hidden["cosine"].min is not None:
        ax.axhline(1 - hidden["cosine"].min, ls="--", color="C1", lw=1, label="1 - cosine limit")
    loc = result.localization
    if loc.name is not None:
        at = next(i for i, p in enumerate(points) if p.name == loc.name)
        ax.axvline(at, color="red", lw=1.5, alpha=0.6, label=f"localized: {loc.module or loc.name}")
    ax.set_yscale("log")
    ax.set_xticks(xs, labels, rotation=90 if len(xs) > 24 else 0, fontsize=8)
    ax.set_xlabel("hidden state after decoder layer (embed = embeddings)")
    ax.set_ylabel("error (log scale)")
    ax.set_title(
        f"{result.verdict}: {Path(result.candidate.path).name} vs "
        f"{Path(result.reference.path).name}",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
