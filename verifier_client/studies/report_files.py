"""The evaluation commands' output files: ``<stem>.json``, ``.md``, ``.csv`` and ``.png``, each
written atomically (``models.atomic``), so an interrupted run never leaves a half-written file."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from models.atomic import write_bytes, write_json, write_text

# tab10 without its grey (grey marks the independent band and chance lines), olive and cyan
# last, so neighbouring series never share a hue.
DISTINCT_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
                    "tab:pink", "tab:olive", "tab:cyan", "black")


def plain_log_ticks(axes: Any, axis: str, values: list[float]) -> None:
    """A log axis ticked at ``values`` written as plain numbers (10, 25, 50), not 10^1."""
    from matplotlib.ticker import FixedLocator, NullLocator, StrMethodFormatter

    target = axes.xaxis if axis == "x" else axes.yaxis
    target.set_major_locator(FixedLocator(values))
    target.set_major_formatter(StrMethodFormatter("{x:g}"))
    target.set_minor_locator(NullLocator())


def png_bytes(figure: Any) -> bytes:
    """A matplotlib figure as PNG bytes (120 dpi); the figure is closed."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    return buffer.getvalue()


def shade_independent_band(axes: Any, methods: list[str],
                           ranges: dict[str, list[float]]) -> None:
    """Grey [min, max] of the independent models behind each method's group of bars."""
    for j, method in enumerate(methods):
        low, high = ranges[method]
        axes.fill_between([j - 0.45, j + 0.45], low, high, color="grey", alpha=0.3,
                          label="independent [min, max]" if j == 0 else None)


def write_report(out: Path, stem: str, report: dict[str, Any], markdown: str, csv_text: str,
                 png: bytes) -> list[Path]:
    """Write the four files under ``out``; returns their paths (json, md, csv, png)."""
    paths = [out / f"{stem}.{ext}" for ext in ("json", "md", "csv", "png")]
    write_json(paths[0], report)
    write_text(paths[1], markdown)
    write_text(paths[2], csv_text)
    write_bytes(paths[3], png)
    return paths
