"""Training and fine-tuning loops, and top-k accuracy, on in-memory ``ImageData``.

Defaults (CIFAR ResNet recipe of He et al. 2016, shortened): SGD, momentum 0.9, Nesterov,
weight decay 5e-4, batch 128, learning rate 0.1 with one cosine cycle over all steps;
augmentation = random crop with zero padding (image_size // 8 pixels) + horizontal flip, done
batched on tensors. Determinism: every random draw comes from generators seeded by ``seed`` and
torch's deterministic algorithms are requested, so the same seed replays the same weights on
the same machine and library versions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.nn import functional as F

from models.datasets import ImageData

BatchTransform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 2
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"need epochs >= 1, batch_size >= 1, lr > 0; got {self}")


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global RNG (weight init) and return a CPU generator for data order."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


def random_crop_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random crop (zero padding of H // 8) and horizontal flip, one gather."""
    n, _, h, w = images.shape
    pad = max(1, h // 8)
    padded = F.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    cols = torch.arange(w).expand(n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols) + dx[:, None]
    rows = torch.arange(h)[None, :] + dy[:, None]
    batch = torch.arange(n)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def _progress() -> Progress:
    from rich.console import Console

    console = Console(stderr=True)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), TimeRemainingColumn(), transient=True,
                    console=console, disable=not console.is_terminal)


def fit(model: nn.Module, data: ImageData, settings: TrainSettings,
        transform: BatchTransform | None = None, description: str = "train",
        show_progress: bool = True) -> nn.Module:
    """Train ``model`` in place on ``data``; ``transform`` (e.g. CSRP) follows augmentation.

    ``transform(images, generator)`` gets float [0, 1] batches and a seeded generator. Batches
    are drawn and augmented on the CPU (the same draws on every device), then moved to the
    model's device.
    """
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(settings.seed)
    optimiser = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                                weight_decay=settings.weight_decay, nesterov=True)
    steps_per_epoch = math.ceil(len(data) / settings.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=settings.lr, total_steps=settings.epochs * steps_per_epoch,
        pct_start=0.15, anneal_strategy="cos", div_factor=10.0, final_div_factor=100.0)
    model.train()
    with _progress() as progress:
        task = progress.add_task(description, total=settings.epochs * steps_per_epoch, status="",
                                 visible=show_progress)
        for epoch in range(settings.epochs):
            order = torch.randperm(len(data), generator=generator)
            running, seen = 0.0, 0
            for start in range(0, len(data), settings.batch_size):
                index = order[start:start + settings.batch_size]
                images, labels = data.floats(index), data.labels[index]
                if settings.augment:
                    images = random_crop_flip(images, generator)
                images, labels = images.to(device), labels.to(device)
                if transform is not None:
                    images = transform(images, generator)
                loss = F.cross_entropy(model(images), labels)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                scheduler.step()
                running += float(loss.detach()) * len(index)
                seen += len(index)
                status = f"epoch {epoch + 1}/{settings.epochs} loss {running / seen:.3f}"
                progress.update(task, advance=1, status=status)
    return model.eval()


@dataclass(frozen=True)
class Accuracy:
    top1: float
    top5: float
    top1_std: float = 0.0
    top5_std: float = 0.0
    repeats: int = 1

    def as_dict(self) -> dict[str, float | int]:
        return {"top1": round(self.top1, 4), "top5": round(self.top5, 4),
                "top1_std": round(self.top1_std, 4), "top5_std": round(self.top5_std, 4),
                "repeats": self.repeats}


LogitsFn = Callable[[torch.Tensor], torch.Tensor]


def accuracy(logits_fn: LogitsFn, data: ImageData, transform: BatchTransform | None = None,
             repeats: int = 1, seed: int = 0, batch_size: int = 500) -> Accuracy:
    """Top-1/top-5 of ``logits_fn`` on ``data``, mean and std over ``repeats`` transform draws."""
    generator = torch.Generator().manual_seed(seed)
    top1s, top5s = [], []
    for _ in range(repeats if transform is not None else 1):
        hit1 = hit5 = 0
        for start in range(0, len(data), batch_size):
            images = data.floats(slice(start, start + batch_size))
            labels = data.labels[start:start + batch_size]
            if transform is not None:
                images = transform(images, generator)
            with torch.inference_mode():
                logits = logits_fn(images).cpu()
            k = min(5, logits.shape[1])
            top = logits.topk(k, dim=1).indices
            hit1 += int((top[:, 0] == labels).sum())
            hit5 += int((top == labels[:, None]).any(1).sum())
        top1s.append(hit1 / len(data))
        top5s.append(hit5 / len(data))
    t1, t5 = torch.tensor(top1s), torch.tensor(top5s)
    return Accuracy(float(t1.mean()), float(t5.mean()), _std(t1), _std(t5), len(top1s))


def _std(values: torch.Tensor) -> float:
    return float(values.std()) if len(values) > 1 else 0.0
