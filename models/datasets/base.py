"""In-memory image datasets: uint8 [N, C, H, W] images and int64 labels, with seeded subsets.

Everything is held as tensors so training, augmentation and evaluation are batched ops rather
than per-sample PIL work (2 CPU cores make a Python-level data loader the bottleneck).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset: shape, classes and normalisation statistics."""

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    labels: tuple[str, ...]

    @property
    def input_shape(self) -> list[int]:
        return [self.in_channels, self.image_size, self.image_size]


@dataclass
class ImageData:
    """A split held in memory: ``images`` uint8 [N, C, H, W], ``labels`` int64 [N]."""

    info: DatasetInfo
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    source: str = ""
    indices: list[int] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("labels must be [N] and match the number of images")
        self.labels = self.labels.to(torch.int64)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def floats(self, index: torch.Tensor | slice | None = None) -> torch.Tensor:
        """Images (optionally a subset) as float32 in [0, 1]."""
        images = self.images if index is None else self.images[index]
        return images.to(torch.float32).div_(255.0)

    def subset(self, fraction: float, seed: int) -> ImageData:
        """A seeded random subset holding ``round(fraction * N)`` samples (at least 1).

        The same (fraction, seed) always gives the same samples, so the pirate's 5% or 20% of
        the training set is reproducible and recorded by its seed alone.
        """
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        count = max(1, round(fraction * len(self)))
        generator = torch.Generator().manual_seed(seed)
        chosen = torch.randperm(len(self), generator=generator)[:count].sort().values
        return ImageData(self.info, self.split, self.images[chosen], self.labels[chosen],
                         source=f"{self.source} subset(fraction={fraction}, seed={seed})",
                         indices=chosen.tolist())

    def split_off(self, count: int, seed: int) -> tuple[ImageData, ImageData]:
        """``(chosen, rest)``: ``count`` seeded samples and every other sample, both in index
        order. The owner's private points (Dataset Inference) are ``chosen`` of the training
        split; innocents that never saw them train on ``rest``."""
        if not 0 < count < len(self):
            raise ValueError(f"count must be in [1, {len(self) - 1}], got {count}")
        generator = torch.Generator().manual_seed(seed)
        mask = torch.zeros(len(self), dtype=torch.bool)
        mask[torch.randperm(len(self), generator=generator)[:count]] = True
        note = f"split_off(count={count}, seed={seed})"
        return (self._select(mask, f"{note} chosen"), self._select(~mask, f"{note} rest"))

    def _select(self, mask: torch.Tensor, note: str) -> ImageData:
        index = mask.nonzero().flatten()
        return ImageData(self.info, self.split, self.images[index], self.labels[index],
                         source=f"{self.source} {note}", indices=index.tolist())

    def rows(self, start: int, stop: int) -> ImageData:
        """Samples ``start`` to ``stop - 1`` (e.g. the half of the test split a pirate owns)."""
        if not 0 <= start < stop <= len(self):
            raise ValueError(f"need 0 <= start < stop <= {len(self)}, got {start}, {stop}")
        mask = torch.zeros(len(self), dtype=torch.bool)
        mask[start:stop] = True
        return self._select(mask, f"rows({start}, {stop})")

    def take(self, count: int) -> ImageData:
        """The first ``count`` samples (deterministic, for quick evaluations)."""
        return ImageData(self.info, self.split, self.images[:count], self.labels[:count],
                         source=f"{self.source} first {count}")
