"""Pieces every pirate modification shares: checking parent/out, the parent reference recorded
in lineage, and one evaluation pass giving accuracy and predicted labels (for agreement)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from models.datasets import ImageData
from models.errors import UserError
from models.repository import ModelConfig, load_config, validate_model_name

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


def resolve_parent(parent: str | Path, out: str | Path) -> tuple[ModelConfig, str]:
    """Validate a (parent, out) pair before any work; return the parent's config and the
    reference lineage records: the parent's entry name when both live in the same repository
    folder, else the parent's path as given.

    Raises ``UserError`` for an invalid out name, out == parent, or a parent that is not an entry.
    """
    parent, out = Path(parent), Path(out)
    validate_model_name(out.name)
    if out.resolve() == parent.resolve():
        raise UserError(f"--out {out} is the parent entry itself; choose a new name "
                        "(a modification never overwrites its parent)")
    config = load_config(parent)
    same_repo = out.parent.resolve() == parent.parent.resolve()
    return config, parent.name if same_repo else str(parent)


@dataclass(frozen=True)
class Evaluation:
    """Top-1/top-5 accuracy and the predicted labels on one dataset."""

    top1: float
    top5: float
    labels: torch.Tensor

    def agreement(self, other: Evaluation) -> float:
        """Fraction of samples on which both predicted the same label."""
        return float((self.labels == other.labels).float().mean())


def evaluate(logits_fn: LogitsFn, data: ImageData, batch_size: int = 500) -> Evaluation:
    """One pass of ``logits_fn`` (a torch module or ``Predictor.logits``) over ``data``."""
    hit1 = hit5 = 0
    predicted = []
    for start in range(0, len(data), batch_size):
        images = data.floats(slice(start, start + batch_size))
        labels = data.labels[start:start + batch_size]
        with torch.inference_mode():
            logits = logits_fn(images).cpu()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hit1 += int((top[:, 0] == labels).sum())
        hit5 += int((top == labels[:, None]).any(1).sum())
        predicted.append(top[:, 0])
    count = max(1, len(data))
    return Evaluation(hit1 / count, hit5 / count, torch.cat(predicted) if predicted else
                      torch.empty(0, dtype=torch.int64))


def comparison_metrics(parent: Evaluation, child: Evaluation, samples: int) -> dict[str, float]:
    """Metrics every modified entry records about its parent on the same test samples."""
    return {"parent_test_top1": round(parent.top1, 4), "parent_test_top5": round(parent.top5, 4),
            "agreement_with_parent": round(child.agreement(parent), 4), "test_samples": samples}
