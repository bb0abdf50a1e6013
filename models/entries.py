"""Writing repository entries the same way everywhere: measure, export, record lineage, save."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.datasets import DatasetInfo, ImageData
from models.errors import UserError
from models.onnx_export import check_parity, export_onnx
from models.repository import Lineage, ModelConfig, build_classifier, save_entry
from models.training import TrainSettings, accuracy, fit, seed_everything


def new_config(name: str, arch: str, info: DatasetInfo, lineage: Lineage,
               preprocessing: dict[str, Any] | None = None) -> ModelConfig:
    return ModelConfig(name=name, arch=arch, dataset=info.name, num_classes=info.num_classes,
                       input_shape=info.input_shape, labels=list(info.labels),
                       mean=list(info.mean), std=list(info.std), preprocessing=preprocessing,
                       backend="onnx", lineage=lineage)


def derive_config(parent: ModelConfig, parent_ref: str, name: str, modification: str,
                  parameters: dict[str, Any], seed: int | None,
                  preprocessing: dict[str, Any] | None = None) -> ModelConfig:
    """Config of a model derived from ``parent`` (pirate modifications, adaptations)."""
    lineage = Lineage(parent=parent_ref, modification=modification, parameters=parameters,
                      seed=seed)
    return parent.model_copy(update={"name": name, "lineage": lineage, "metrics": {},
                                     "preprocessing": preprocessing, "detector": None})


def finalize_entry(out: Path, model: nn.Module, config: ModelConfig, test: ImageData,
                   extra_metrics: dict[str, Any] | None = None) -> ModelConfig:
    """Measure clean test accuracy, export ONNX (parity-checked), write the entry atomically."""
    model = model.eval().cpu()
    acc = accuracy(model, test)
    onnx_bytes = export_onnx(model, config.input_shape)
    parity = check_parity(model, onnx_bytes, test.floats(slice(0, 256)))
    if not parity.labels_identical:
        raise UserError(f"ONNX export of {out.name} disagrees with torch on "
                        f"{1 - parity.label_agreement:.1%} of a test batch")
    metrics = {"test_top1": round(acc.top1, 4), "test_top5": round(acc.top5, 4),
               "onnx_max_abs_logit_diff": parity.max_abs_logit_diff, **(extra_metrics or {})}
    config = config.model_copy(update={"name": out.name, "metrics": metrics})
    save_entry(out, config, model=model, onnx_bytes=onnx_bytes)
    return config


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


def train_to_entry(out: Path, arch: str, info: DatasetInfo, train: ImageData, test: ImageData,
                   settings: TrainSettings, extra_parameters: dict[str, Any] | None = None,
                   show_progress: bool = True, device: str = "cpu") -> ModelConfig:
    """Train ``arch`` from scratch with ``settings`` on ``device`` and write the entry (lineage
    ``train``; a device other than the CPU is recorded)."""
    if device != "cpu":
        extra_parameters = {**(extra_parameters or {}), "device": device}
    lineage = Lineage(modification="train", seed=settings.seed, parameters={
        "epochs": settings.epochs, "batch_size": settings.batch_size, "lr": settings.lr,
        "optimizer": "sgd-nesterov-0.9-wd5e-4-onecycle",
        "augment": "random-crop+hflip" if settings.augment else "none",
        **(extra_parameters or {})})
    config = new_config(out.name, arch, info, lineage)
    seed_everything(settings.seed)
    model = build_classifier(config).to(device).train()
    started = time.perf_counter()
    fit(model, train, settings, description=f"train {out.name}", show_progress=show_progress)
    seconds = time.perf_counter() - started
    return finalize_entry(out, model, config, test, extra_metrics={
        "train_seconds": round(seconds, 1),
        "train_images_per_second": round(settings.epochs * len(train) / seconds, 1)})
