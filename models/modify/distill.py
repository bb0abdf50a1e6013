"""Knowledge distillation on labels alone: the classic removal attack (and CAE's surrogates).

Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", 2015, in its label-only
form (as the model-extraction attacks of the fingerprinting literature, e.g. SAC's "label-only
students", use it): a *fresh* student, of the parent's architecture or another one, is trained
from scratch only on the parent's predicted labels (argmax, no scores) for a seeded share of the
training images. The images' true labels are never used. Training is the zoo's recipe
(``models.training.fit``: SGD + Nesterov, one-cycle schedule, random crop + flip); the labels
are computed once on the un-augmented images.

Defaults: all training images (``fraction=1.0``), 2 epochs, learning rate 0.1, the parent's
architecture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from models.datasets import ImageData
from models.entries import derive_config, finalize_entry
from models.errors import UserError
from models.modify.base import comparison_metrics, evaluate, resolve_parent
from models.repository import WEIGHTS_FILE, ModelConfig, build_classifier
from models.runtime import load_predictor
from models.training import TrainSettings, fit, seed_everything

LABEL_BATCH = 500


def relabel(logits_fn: Any, data: ImageData) -> ImageData:
    """``data`` with every label replaced by ``logits_fn``'s argmax (the teacher's answer)."""
    with torch.inference_mode():
        labels = torch.cat([logits_fn(data.floats(slice(s, s + LABEL_BATCH))).argmax(1).cpu()
                            for s in range(0, len(data), LABEL_BATCH)])
    return ImageData(data.info, data.split, data.images, labels,
                     source=f"{data.source} labelled by the teacher")


def distill_entry(parent: str | Path, out: str | Path, train: ImageData, test: ImageData, *,
                  arch: str | None = None, epochs: int = 2, fraction: float = 1.0,
                  lr: float = 0.1, seed: int = 0, parameters: dict[str, Any] | None = None,
                  show_progress: bool = True, labels: torch.Tensor | None = None,
                  labels_from: str = "parent-hard-labels") -> ModelConfig:
    """Write ``out``: a fresh ``arch`` student trained on ``parent``'s labels only.

    ``labels`` (int64, one per image of ``train``) are labels the parent already answered, e.g.
    through its server (``models.extraction``; ``labels_from`` says so); without them the parent
    labels ``train`` in-process. Lineage ``distill`` records the student architecture, epochs,
    fraction, number of training samples, lr, seed and ``labels`` (plus ``parameters``);
    metrics add the parent's accuracy and the student's label agreement with it on ``test``.
    The parent may be ONNX-only: it is only queried.
    """
    parent, out = Path(parent), Path(out)
    if epochs < 1 or not 0.0 < fraction <= 1.0 or not lr > 0:
        raise UserError(f"distillation needs epochs >= 1, fraction in (0, 1] and lr > 0; got "
                        f"{epochs}, {fraction}, {lr}")
    parent_config, parent_ref = resolve_parent(parent, out)
    # the white-box copy when there is one (torch), else the ONNX graph the pirate serves
    teacher = load_predictor(parent, "torch" if (parent / WEIGHTS_FILE).is_file() else "onnx")
    if labels is not None:
        if labels.shape != (len(train),) or fraction < 1.0:
            raise UserError("given labels need one per training image and fraction 1")
        subset = student_data = ImageData(train.info, train.split, train.images,
                                          labels.to(torch.int64),
                                          source=f"{train.source} labelled by {labels_from}")
    else:
        subset = train.subset(fraction, seed) if fraction < 1.0 else train
        student_data = relabel(teacher.logits, subset)
    config = derive_config(parent_config, parent_ref, out.name, "distill", {
        "arch": arch or parent_config.arch, "epochs": epochs, "fraction": fraction,
        "lr": lr, "labels": labels_from, "train_samples": len(subset),
        "optimizer": "sgd-nesterov-0.9-wd5e-4-onecycle", "augment": "random-crop+hflip",
        **(parameters or {})}, seed=seed, preprocessing=None)
    config = config.model_copy(update={"arch": arch or parent_config.arch})
    seed_everything(seed)
    model = build_classifier(config).train()
    fit(model, student_data, TrainSettings(epochs=epochs, lr=lr, seed=seed),
        description=f"distill {out.name}", show_progress=show_progress)
    extra = comparison_metrics(evaluate(teacher.logits, test), evaluate(model, test), len(test))
    return finalize_entry(out, model, config, test, extra_metrics=extra)
