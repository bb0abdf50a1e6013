"""Additive Gaussian noise, clipped to the pixel range: the simplest randomized front.

Lukas et al. (IEEE S&P 2022) list additive noise among the input-preprocessing removal attacks;
Cohen et al.'s randomized smoothing (ICML 2019) serves ``f(x + e)`` with ``e ~ N(0, std^2)``.
Per pixel ``x + std * z``, ``z`` standard normal drawn on the CPU (``[N, C, H, W]`` float32),
then clipped to ``[0, 1]``. Default ``std=0.1``; 0 is the identity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from models.transforms.base import Option, RandomTransform, check_batch_shape, check_images
from models.transforms.registry import register_transform

__all__ = ["MAX_STD", "GaussianNoise"]

MAX_STD = 1.0


@register_transform("noise")
class GaussianNoise(RandomTransform):
    """``clip(x + std * z, 0, 1)`` with fresh standard normal ``z`` per pixel (Lukas et al.,
    S&P 2022; Cohen et al., ICML 2019). Default ``std=0.1``."""

    options = (Option("std", float, f"noise standard deviation in [0, {MAX_STD:g}]", 0.1),)

    def __init__(self, std: float = 0.1) -> None:
        super().__init__()
        if isinstance(std, bool) or not isinstance(std, int | float) \
                or not (math.isfinite(std) and 0 <= std <= MAX_STD):
            raise ValueError(f"std must be a number in [0, {MAX_STD:g}]; got {std!r}")
        self.std = float(std)

    @classmethod
    def strength_spec(cls, strength: float) -> dict[str, object]:
        """``std = 0.5 * strength``."""
        return {"name": "noise", "std": round(0.5 * float(strength), 5)}

    def generate_params(self, batch_shape: Sequence[int],
                        generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``{"z"}``: float32 standard normals ``[N, C, H, W]`` on the CPU."""
        shape = check_batch_shape(batch_shape)
        return {"z": torch.randn(shape, generator=generator)}

    def apply_params(self, images: Tensor, params: dict[str, Tensor]) -> Tensor:
        """``clip(images + std * z, 0, 1)``."""
        images = check_images(images)
        z = params.get("z") if isinstance(params, dict) else None
        if not isinstance(z, Tensor) or tuple(z.shape) != tuple(images.shape):
            raise ValueError("params must be {'z': float tensor shaped like the images}")
        return (images + self.std * z.to(images.device, images.dtype)).clamp(0, 1)
