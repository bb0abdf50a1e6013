"""Fine-tuning of all layers (FTAL), the paper's third baseline pirate, and the generic loop a
CSRP-adapting pirate reuses.

FTAL (Adi et al. 2018, as used in the seed paper): every parameter of the stolen model is
trained a few epochs on a small clean subset of the training set (the pirate's 5-20 %), with a
small learning rate. The loop is ``models.training.fit`` (SGD + Nesterov, weight decay 5e-4,
one-cycle cosine schedule peaking at ``lr``, random crop + flip); no preprocessing for FTAL.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models.datasets import ImageData
from models.entries import derive_config, finalize_entry
from models.errors import UserError
from models.modify.base import comparison_metrics, evaluate, resolve_parent
from models.repository import ModelConfig, load_model
from models.training import BatchTransform, TrainSettings, fit

DEFAULT_LR = 0.01


def finetune(model: nn.Module, data: ImageData, settings: TrainSettings,
             transform: BatchTransform | None = None, description: str = "finetune",
             show_progress: bool = True) -> nn.Module:
    """Fine-tune *all* parameters of ``model`` in place on ``data``; returns it in eval mode.

    ``transform(images, generator)`` (e.g. CSRP) is applied to every [0, 1] training batch after
    augmentation; ``None`` is plain FTAL. Data order and draws come from ``settings.seed``.
    """
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return fit(model, data, settings, transform=transform, description=description,
               show_progress=show_progress)


def relative_change(before: dict[str, torch.Tensor], model: nn.Module) -> float:
    """||w_after - w_before|| / ||w_before|| over all parameters (not buffers)."""
    diff = total = 0.0
    for name, parameter in model.named_parameters():
        old = before[name]
        diff += float((parameter.detach() - old).pow(2).sum())
        total += float(old.pow(2).sum())
    return (diff / total) ** 0.5 if total > 0 else 0.0


def check_ftal(epochs: int, fraction: float, lr: float, batch_size: int = 128) -> None:
    """``UserError`` naming the first bad FTAL setting."""
    if not 0.0 < fraction <= 1.0:
        raise UserError(f"data fraction must be in (0, 1], got {fraction}")
    if epochs < 1:
        raise UserError(f"epochs must be >= 1, got {epochs}")
    if not 0.0 < lr <= 10.0:
        raise UserError(f"learning rate must be in (0, 10], got {lr}")
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")


def ftal_entry(parent: str | Path, out: str | Path, train: ImageData, test: ImageData,
               epochs: int = 2, fraction: float = 0.05, lr: float = DEFAULT_LR, seed: int = 0,
               batch_size: int = 128, show_progress: bool = True) -> ModelConfig:
    """Write ``out``: the parent fine-tuned (FTAL) on a seeded ``fraction`` of ``train``.

    Lineage ``ftal`` records epochs, fraction, the number of samples, lr, batch size and seed;
    metrics add the parent's accuracy and label agreement on ``test`` and the relative weight
    change.
    """
    parent, out = Path(parent), Path(out)
    check_ftal(epochs, fraction, lr, batch_size)
    parent_config, parent_ref = resolve_parent(parent, out)
    model, _ = load_model(parent)
    before = evaluate(model, test)
    subset = train.subset(fraction, seed)
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    settings = TrainSettings(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    finetune(model, subset, settings, description=f"ftal {out.name}",
             show_progress=show_progress)
    after = evaluate(model, test)
    config = derive_config(parent_config, parent_ref, out.name, "ftal", {
        "epochs": epochs, "fraction": fraction, "train_samples": len(subset), "lr": lr,
        "batch_size": batch_size, "layers": "all", "optimizer": "sgd-nesterov-0.9-wd5e-4-onecycle",
        "augment": "random-crop+hflip"}, seed=seed, preprocessing=parent_config.preprocessing)
    extra = {"weight_relative_change": round(relative_change(initial, model), 6),
             **comparison_metrics(before, after, len(test))}
    return finalize_entry(out, model, config, test, extra_metrics=extra)
