"""Median smoothing: the "spatial smoothing" squeezer of feature squeezing, deterministic.

Xu et al., "Feature Squeezing: Detecting Adversarial Examples in Deep Neural Networks" (NDSS
2018) smooth each channel with a ``k x k`` median filter (2x2 and 3x3 there); Lukas et al. (IEEE
S&P 2022) list median smoothing among the input-preprocessing removal attacks. Here ``k`` is odd
(default 3), borders are mirrored without repeating the edge pixel (equal to SciPy's
``ndimage.median_filter(mode="mirror")``; torch has no median filter, so the ``k * k``
neighbourhoods come from one ``unfold`` and ``Tensor.median``, batched on any device).
``k = 1`` is the identity. Deterministic: it draws nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

from models.transforms.base import DeterministicTransform, Option
from models.transforms.registry import register_transform

__all__ = ["MAX_KERNEL", "MedianSmoothing"]

MAX_KERNEL = 15


@register_transform("median")
class MedianSmoothing(DeterministicTransform):
    """``k x k`` median filter per channel (Xu et al., NDSS 2018). Default ``kernel_size=3``."""

    options = (Option("kernel_size", int, f"odd filter size in 1..{MAX_KERNEL}", 3),)

    def __init__(self, kernel_size: int = 3) -> None:
        super().__init__()
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) \
                or not 1 <= kernel_size <= MAX_KERNEL or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd integer in 1..{MAX_KERNEL}; "
                             f"got {kernel_size!r}")
        self.kernel_size = kernel_size

    @classmethod
    def strength_spec(cls, strength: float) -> dict[str, object]:
        """Kernel 1, 3, 5 or 7 (``1 + 2 * round(3 * strength)``)."""
        return {"name": "median", "kernel_size": 1 + 2 * round(3 * float(strength))}

    def check_fits(self, input_shape: Sequence[int]) -> None:
        if self.kernel_size // 2 >= min(int(input_shape[1]), int(input_shape[2])):
            raise ValueError(f"kernel_size {self.kernel_size} does not fit images of "
                             f"{input_shape[1]}x{input_shape[2]}")

    def transform(self, images: Tensor) -> Tensor:
        """The median of every pixel's ``k x k`` mirrored neighbourhood, per channel."""
        k = self.kernel_size
        if k == 1 or images.shape[0] == 0:
            return images.clone()
        self.check_fits(images.shape[1:])
        n, c, h, w = images.shape
        padded = F.pad(images, (k // 2,) * 4, mode="reflect")
        patches = F.unfold(padded.reshape(n * c, 1, h + k - 1, w + k - 1), k)  # [NC, k*k, HW]
        return patches.median(dim=1).values.reshape(n, c, h, w)
