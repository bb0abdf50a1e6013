"""Bit-depth reduction: the colour-depth squeezer of feature squeezing, deterministic.

Xu et al., "Feature Squeezing: Detecting Adversarial Examples in Deep Neural Networks" (NDSS
2018): each pixel value ``x`` in ``[0, 1]`` becomes ``round(x * (2^b - 1)) / (2^b - 1)`` for
``b`` bits (1 bit on MNIST there); Lukas et al. (IEEE S&P 2022) list it among the removal
attacks. Default ``bits=4``; 8 bits leaves an 8-bit image unchanged. Deterministic: it draws
nothing. A two-line formula, so written here (torch has no quantiser for float images).
"""

from __future__ import annotations

from torch import Tensor

from models.transforms.base import DeterministicTransform, Option
from models.transforms.registry import register_transform

__all__ = ["BitDepth"]


@register_transform("bitdepth")
class BitDepth(DeterministicTransform):
    """Reduce every pixel to ``bits`` bits (Xu et al., NDSS 2018). Default ``bits=4``."""

    options = (Option("bits", int, "bits per pixel value, an integer in 1..8", 4),)

    def __init__(self, bits: int = 4) -> None:
        super().__init__()
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
            raise ValueError(f"bits must be an integer in 1..8; got {bits!r}")
        self.bits = bits

    @classmethod
    def strength_spec(cls, strength: float) -> dict[str, object]:
        """``bits = 8 - round(7 * strength)``."""
        return {"name": "bitdepth", "bits": 8 - round(7 * float(strength))}

    def transform(self, images: Tensor) -> Tensor:
        """``round(x * (2^bits - 1)) / (2^bits - 1)`` on ``x`` clamped to ``[0, 1]``."""
        levels = float(2 ** self.bits - 1)
        return (images.clamp(0, 1) * levels).round() / levels
