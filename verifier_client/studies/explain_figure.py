"""The explain command's picture (the seed paper's Figures 4 and 5 layout) and its Markdown table.

One row per group (clean, then each method's first fingerprint); four columns: the image with its
label, LIME's weights for that label, the image after one CSRP draw, LIME's weights there (for
the same label). Positive weights (evidence for the label) are red, negative blue; each map has
its own symmetric scale and colour bar, so the weaker evidence left after CSRP stays visible and
its size is read off the bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from verifier_client.protocol import member_text
from verifier_client.studies.explain import GroupResult

__all__ = ["draw_figure", "markdown"]


def draw_figure(results: Sequence[GroupResult], class_names: Sequence[str], path: Path,
                spec: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(results)
    figure, axes = plt.subplots(rows, 4, figsize=(9.6, 2.05 * rows + 0.8), squeeze=False)
    titles = ("image", "LIME for its label", "after CSRP", "LIME after (same label)")
    transform = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "name")
    for row, result in enumerate(results):
        pic = result.picture
        label, after = int(pic["label"]), int(pic["csrp_label"])
        cells = [(pic["image"], "gray"), (pic["heat"], "bwr"), (pic["csrp_image"], "gray"),
                 (pic["csrp_heat"], "bwr")]
        for column, (data, cmap) in enumerate(cells):
            ax = axes[row][column]
            if cmap == "gray":
                ax.imshow(data, cmap=cmap, vmin=0, vmax=1)
            else:
                limit = max(float(np.abs(data).max()), 1e-12)
                shown = ax.imshow(data, cmap=cmap, vmin=-limit, vmax=limit)
                bar = figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.03)
                bar.ax.tick_params(labelsize=6)
                bar.formatter.set_powerlimits((-2, 2))
                bar.ax.yaxis.get_offset_text().set_fontsize(6)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[column], fontsize=9)
        mean = float(np.mean(result.overlaps))
        axes[row][0].set_ylabel(f"{result.name}\noverlap {mean:.2f}", fontsize=9)
        axes[row][0].set_xlabel(_name(class_names, label), fontsize=8)
        flipped = "" if after == label else " (flipped)"
        axes[row][2].set_xlabel(_name(class_names, after) + flipped, fontsize=8)
    figure.suptitle(f"LIME evidence before and after CSRP ({transform}); overlap = Jaccard of the "
                    "top superpixels, mean over the group;\nred: evidence for the label, blue: "
                    "against; colour bars: LIME weight, one scale per map", fontsize=9)
    figure.tight_layout(rect=(0, 0, 1, 0.965))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _name(class_names: Sequence[str], index: int) -> str:
    return class_names[index] if 0 <= index < len(class_names) else str(index)


def markdown(summary: dict[str, Any]) -> str:
    settings = summary["settings"]
    lines = [f"LIME overlap before / after CSRP ({member_text(summary['transform'])}), "
             f"{summary['segmentation']}, top {settings['top_k']} superpixels, "
             f"{settings['lime_samples']} LIME samples, seed {settings['seed']}", "",
             "| group | images | overlap mean | 95% CI (bootstrap over images) | std | "
             "label kept under CSRP |",
             "|---|---:|---:|---|---:|---:|"]
    for group in summary["groups"]:
        low, high = group["overlap_ci95"]
        lines.append(f"| {group['group']} | {group['n']} | {group['overlap_mean']:.3f} | "
                     f"[{low:.3f}, {high:.3f}] | {group['overlap_std']:.3f} | "
                     f"{group['label_kept_under_csrp']:.2f} |")
    return "\n".join(lines) + "\n"
