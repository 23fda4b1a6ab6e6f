"""The HTML report renders in a real browser: headless Chromium screenshots it, and the
screenshot shows the page and its embedded plots (the gate-timing bars are green #38a169)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adaptgate.report.render import write_report

sys.path.insert(0, str(Path(__file__).parents[2] / "unit" / "report"))
from report_runs import make_run_dir

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PLOT_GREEN = (0x38, 0xA1, 0x69)


def screenshot(page: Path, png: Path, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={png}",
            "--window-size=1280,2000", page.as_uri(),
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_html_report_renders_with_its_plots(tmp_path, lang):
    import numpy as np
    from PIL import Image, ImageStat

    run_dir = make_run_dir(tmp_path, f"run-{lang}")
    page = next(f for f in write_report(run_dir, langs=(lang,)) if f.suffix == ".html")
    png = tmp_path / f"{lang}.png"
    done = screenshot(page, png, tmp_path / f"profile-{lang}")
    assert png.is_file(), done.stderr[-2000:]
    image = Image.open(png).convert("RGB")
    assert image.size == (1280, 2000)
    assert max(ImageStat.Stat(image).stddev) > 20  # not a blank page
    pixels = np.asarray(image, dtype=np.int32)
    green = int((np.abs(pixels - np.array(PLOT_GREEN)) < 12).all(axis=2).sum())
    assert green > 3000, f"only {green} pixels of the plot's bars: the plot did not render"
