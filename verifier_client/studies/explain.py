"""LIME explanations of the target before and after CSRP: the seed paper's Figures 4 and 5, and a
number for them.

Seed paper, section 4.3: LIME (Ribeiro et al., KDD 2016) shows that CSRP leaves the evidence for
a clean image's label where it was, while it scatters the evidence for a fingerprint's label.
Here every explained image (clean test images and the fingerprints of each set) is explained
twice: as it is, and after one CSRP draw; both explanations are for the label the target gives
the untransformed image. The measure beside the pictures is the overlap of the two explanations'
top superpixels (Jaccard index of the ``top_k`` cells with the largest positive weights),
averaged over ``samples`` images per group, with a bootstrap interval over images.

Segmentation: a fixed grid of ``cell`` x ``cell`` pixel squares (default 4: 49 cells on 28x28),
not LIME's default quickshift. Quickshift is made for colour photographs: on 28x28 grey images
it returns a handful of irregular segments that change from image to image and from an image to
its CSRP version, so "the same superpixel" before and after would mean nothing. On the CSRP
view the grid is carried along with the pixels: every output pixel belongs to the cell of the
input pixel it was copied from (CSRP copies each pixel from one source, ``models.csrp_tables``),
and the zero padding is one extra segment that never counts as evidence. So superpixel k is the
same part of the object before and after, and the overlap asks whether the evidence stays on the
same part of the object, as the paper's pictures do.

Explanations need scores, so this runs on the owner's side, in-process, on the owner's own model:
no score ever leaves a server. Defaults: 500 LIME samples per explanation (LIME's own default is
1000; 49 features need far fewer), ``top_k`` 5, hide colour 0 (the background of Fashion-MNIST).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["ExplainSettings", "GroupResult", "carried_segments", "explain_groups",
           "grid_segments", "jaccard"]


@dataclass(frozen=True)
class ExplainSettings:
    """What ``explain_groups`` does (defaults in the module doc)."""

    samples: int = 20
    lime_samples: int = 500
    top_k: int = 5
    cell: int = 4
    seed: int = 0
    bootstrap: int = 2000

    def check(self) -> None:
        from models.errors import UserError

        if min(self.samples, self.lime_samples, self.top_k, self.cell, self.bootstrap) < 1:
            raise UserError("samples, lime samples, top-k, cell and bootstrap must be >= 1")


@dataclass
class GroupResult:
    """One group's overlaps and the pictures of its first image."""

    name: str
    overlaps: list[float]
    label_kept: list[bool]
    picture: dict[str, np.ndarray] = field(default_factory=dict)

    def summary(self, bootstrap: int, seed: int) -> dict[str, Any]:
        values = np.asarray(self.overlaps)
        rng = np.random.default_rng(seed)
        means = rng.choice(values, (bootstrap, values.size)).mean(1)
        low, high = np.quantile(means, [0.025, 0.975])
        return {"group": self.name, "n": int(values.size), "overlap_mean": float(values.mean()),
                "overlap_std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
                "overlap_ci95": [float(low), float(high)],
                "label_kept_under_csrp": float(np.mean(self.label_kept))}


def grid_segments(height: int, width: int, cell: int) -> np.ndarray:
    """int [H, W]: the index of the ``cell`` x ``cell`` square each pixel lies in."""
    rows = np.arange(height) // cell
    cols = np.arange(width) // cell
    return rows[:, None] * (-(-width // cell)) + cols[None, :]


def carried_segments(segments: np.ndarray, tables: Any, x1: int, y1: int,
                     padding: int) -> np.ndarray:
    """The segmentation of a CSRP view: each output pixel gets the segment of the input pixel it
    was copied from (offsets ``x1``, ``y1``; ``tables`` from ``models.csrp_tables``), the zero
    padding gets ``padding``."""
    carried = segments[tables.rows[x1]][:, tables.cols[y1]]
    keep = tables.rows_keep[x1][:, None] & tables.cols_keep[y1][None, :]
    return np.where(keep, carried, padding)


def jaccard(first: set[int], second: set[int]) -> float:
    return len(first & second) / len(first | second) if first | second else 1.0


def _scores(model: torch.nn.Module, channels: int) -> Callable[[np.ndarray], np.ndarray]:
    """LIME's classifier function: [N, H, W, 3] floats in [0, 1] -> softmax [N, classes]."""

    def classify(batch: np.ndarray) -> np.ndarray:
        images = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        images = images.permute(0, 3, 1, 2)[:, :channels].contiguous()
        with torch.inference_mode():
            return torch.softmax(model(images), 1).numpy()

    return classify


def _top_cells(explanation: Any, label: int, k: int,
               exclude: int) -> tuple[set[int], np.ndarray]:
    """The ``k`` cells with the largest positive weights for ``label`` (never the padding
    segment ``exclude``), and the weight map (0 on the padding)."""
    weights = dict(explanation.local_exp[label])
    weights.pop(exclude, None)
    positive = sorted((w, s) for s, w in weights.items() if w > 0)[::-1][:k]
    segments = explanation.segments
    per_segment = np.zeros(int(segments.max()) + 1)
    for segment, weight in weights.items():
        per_segment[segment] = weight
    return {int(s) for _, s in positive}, per_segment[segments]


def explain_groups(model: torch.nn.Module, groups: Sequence[tuple[str, torch.Tensor]],
                   transform: Any, settings: ExplainSettings,
                   progress: Callable[[str], None] | None = None) -> list[GroupResult]:
    """Explain every image of every group before and after one draw of ``transform``.

    ``groups``: (name, float images [n, C, H, W] in [0, 1]); at most ``settings.samples`` of
    each are used. ``transform`` is a ``models.transforms.CSRP``. Deterministic for a seed
    (LIME's sampler and the transform draws).
    """
    from lime import lime_image

    from models.csrp_tables import csrp_tables

    settings.check()
    channels, height, width = groups[0][1].shape[1:]
    segments = grid_segments(height, width, settings.cell)
    padding = int(segments.max()) + 1
    tables = csrp_tables(height, width, transform.sigma, transform.p)
    classify = _scores(model.eval(), channels)
    generator = torch.Generator().manual_seed(settings.seed)
    results = []
    for name, images in groups:
        images = images[:settings.samples]
        params = transform.generate_params(images.shape, generator)
        transformed = transform.apply_params(images, params)
        offsets = params["offsets"].numpy()
        result = GroupResult(name, [], [])
        for index in range(images.shape[0]):
            x1, y1 = offsets[index]
            views = [(images[index], segments),
                     (transformed[index], carried_segments(segments, tables, x1, y1, padding))]
            label = after_label = -1
            cells, heats = [], []
            for position, (view, segmentation) in enumerate(views):
                rgb = view.permute(1, 2, 0).numpy().astype(np.float64)
                if channels == 1:
                    rgb = np.repeat(rgb, 3, axis=2)
                scores = classify(rgb[None])
                if position == 0:
                    label = int(scores.argmax())
                else:
                    after_label = int(scores.argmax())
                explainer = lime_image.LimeImageExplainer(
                    random_state=settings.seed * 100_003 + index)
                with contextlib.redirect_stderr(io.StringIO()):  # lime's own progress bar
                    explanation = explainer.explain_instance(
                        rgb, classify, labels=(label,), top_labels=None, hide_color=0,
                        num_samples=settings.lime_samples,
                        segmentation_fn=lambda _image, s=segmentation: s,
                        batch_size=settings.lime_samples)
                top, heat = _top_cells(explanation, label, settings.top_k, exclude=padding)
                cells.append(top)
                heats.append(heat)
            result.overlaps.append(jaccard(cells[0], cells[1]))
            result.label_kept.append(after_label == label)
            if index == 0:
                result.picture = {"image": images[0, 0].numpy(), "heat": heats[0],
                                  "csrp_image": transformed[0, 0].numpy(), "csrp_heat": heats[1],
                                  "label": np.asarray(label), "csrp_label": np.asarray(after_label)}
        results.append(result)
        if progress is not None:
            progress(f"{name}: overlap {np.mean(result.overlaps):.2f} over {len(result.overlaps)}")
    return results
