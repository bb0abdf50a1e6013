"""The explain command's picture (the seed paper's Figures 4 and 5 layout) and its Markdown table.

One row per group (clean, then each method's first fingerprint); four columns: the image with its
label, LIME's weights for that label, the image after one CSRP draw, LIME's weights there (for
the same label). Positive weights (evidence for the label) are red, negative blue, on one scale
per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from verifier_client.studies.explain import GroupResult

__all__ = ["draw_figure", "markdown"]


def draw_figure(results: Sequence[GroupResult], class_names: Sequence[str], path: Path,
                spec: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(results)
    figure, axes = plt.subplots(rows, 4, figsize=(8.4, 2.05 * rows + 0.6), squeeze=False)
    titles = ("image", "LIME for its label", "after CSRP", "LIME after CSRP (same label)")
    transform = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "name")
    for row, result in enumerate(results):
        pic = result.picture
        label, after = int(pic["label"]), int(pic["csrp_label"])
        scale = max(float(np.abs(pic["heat"]).max()), float(np.abs(pic["csrp_heat"]).max()),
                    1e-12)
        cells = [(pic["image"], "gray", None), (pic["heat"], "bwr", scale),
                 (pic["csrp_image"], "gray", None), (pic["csrp_heat"], "bwr", scale)]
        for column, (data, cmap, limit) in enumerate(cells):
            ax = axes[row][column]
            if limit is None:
                ax.imshow(data, cmap=cmap, vmin=0, vmax=1)
            else:
                ax.imshow(data, cmap=cmap, vmin=-limit, vmax=limit)
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
                    "top superpixels, mean over the group", fontsize=9)
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _name(class_names: Sequence[str], index: int) -> str:
    return class_names[index] if 0 <= index < len(class_names) else str(index)


def markdown(summary: dict[str, Any]) -> str:
    settings = summary["settings"]
    lines = [f"LIME overlap before / after CSRP ({summary['transform']}), "
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
