"""RCE-LT: low-transferability RCE, the low-frequency DCT band of every sample removed.

Siyue Wang, Xiao Wang, Pin-Yu Chen, Pu Zhao, Xue Lin. "Characteristic Examples: High-Robustness,
Low-Transferability Fingerprinting of Neural Networks". IJCAI 2021. Seed paper, sections 2.3 and
5.1 (delta = 0.001; "k controls the high-pass frequency band size").
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import scipy.fft
import torch
from torch import Tensor

from models.errors import UserError
from verifier_client.fingerprints.base import register_method
from verifier_client.fingerprints.rce import RCE


@functools.cache
def _dct_matrix_cpu(size: int) -> Tensor:
    return torch.from_numpy(scipy.fft.dct(np.eye(size), type=2, norm="ortho", axis=0))


def dct_matrix(size: int, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32) -> Tensor:
    """Orthonormal DCT-II matrix ``D`` [size, size]: ``D @ v`` is ``scipy.fft.dct(v, norm="ortho")``
    and ``D.T`` is its inverse."""
    return _dct_matrix_cpu(size).to(device, dtype)


def dct2(images: Tensor) -> Tensor:
    """Orthonormal 2-D DCT-II per channel of [..., H, W] (``D_H @ X @ D_W.T``), batched."""
    h, w = images.shape[-2:]
    return dct_matrix(h, images.device, images.dtype) @ images @ dct_matrix(
        w, images.device, images.dtype).T


def idct2(coefficients: Tensor) -> Tensor:
    """Inverse of ``dct2``."""
    h, w = coefficients.shape[-2:]
    return dct_matrix(h, coefficients.device, coefficients.dtype).T @ coefficients @ dct_matrix(
        w, coefficients.device, coefficients.dtype)


def low_band(images: Tensor, k: int) -> Tensor:
    """The ``k x k`` low-frequency corner of the 2-D DCT of [..., H, W]: [..., k, k]."""
    h, w = images.shape[-2:]
    a = dct_matrix(h, images.device, images.dtype)[:k]
    b = dct_matrix(w, images.device, images.dtype)[:k]
    return a @ images @ b.T


def remove_low_band(images: Tensor, k: int, center: float = 0.5) -> Tensor:
    """``center + IDCT(mask * DCT(x - center))`` with the ``k x k`` low-frequency corner of the
    mask zeroed (a high-pass filter), exact up to float rounding: ``x - A.T (A (x - c) B.T) B``
    with ``A, B`` the first ``k`` rows of the DCT matrices."""
    h, w = images.shape[-2:]
    a = dct_matrix(h, images.device, images.dtype)[:k]
    b = dct_matrix(w, images.device, images.dtype)[:k]
    return images - a.T @ (a @ (images - center) @ b.T) @ b


def low_band_energy_ratio(images: Tensor, k: int, center: float = 0.5) -> Tensor:
    """Per sample: energy of the removed band over total energy of ``x - center`` (0 = none)."""
    shifted = images.to(torch.float64) - center
    band = low_band(shifted, k).pow(2).flatten(1).sum(1)
    return band / shifted.pow(2).flatten(1).sum(1).clamp_min(1e-30)


def default_band(height: int) -> int:
    """``k = H // 4``: 7 for 28 x 28 (Fashion-MNIST), 8 for 32 x 32 (CIFAR), 16 for 64 x 64."""
    return max(1, height // 4)


@register_method("rce-lt")
class RCELT(RCE):
    r"""RCE-LT (Wang et al., IJCAI 2021): RCE followed, after every step, by a DCT high-pass.

    After each PGD step (and on the starting noise) the ``k x k`` lowest-frequency corner of the
    orthonormal 2-D DCT-II of every channel is zeroed, the image transformed back and clipped to
    [0, 1]. The DCT is a matrix product with precomputed DCT matrices, batched over samples and
    channels and exact.

    Choice documented here: the band is removed from ``x - center`` (``center`` = 0.5,
    mid-grey), not from ``x`` itself. The DC coefficient of an image with all pixels in [0, 1]
    is zero only for the black image, so a filter on ``x`` followed by the clip undoes itself;
    around mid-grey the high-passed sample fits the box. Because the clip re-adds a little
    low-frequency energy, filter and clip alternate ``projections`` times per step (projections
    onto two convex sets that share mid-grey), and the final 8-bit rounding adds quantisation
    noise spread over all frequencies: the removed band holds a small fraction of the energy of
    ``x - center``, not exactly zero (``low_band_energy_ratio``).

    Arguments:
        k (int | None): side of the removed low-frequency square, 1 <= k < min(H, W).
            Default: ``None`` = ``H // 4`` (7 for 28 x 28, 8 for 32 x 32).
        center (float): the grey level the band is removed around. Default: 0.5.
        projections (int): filter-and-clip repetitions per step. Default: 3.
        delta (float): parameter noise bound, as RCE. Default: 0.001.
        noise (str): "absolute" (default) or "relative"; see ``RCE``.
        q (int): parameter draws per step, as RCE. Default: 1.
        alpha (float): PGD step size. Default: 0.01.
        steps (int): PGD iterations. Default: 100.
        plus the common ``margin``, ``max_rounds``, ``max_batch`` (see ``FingerprintMethod``).
    """

    expected_acceptance = 0.8

    def __init__(self, *, k: int | None = None, center: float = 0.5, projections: int = 3,
                 **common: Any) -> None:
        self.k = None if k is None else int(k)
        self.center, self.projections = float(center), int(projections)
        self._band = self.k
        super().__init__(**common)

    def _check_params(self) -> None:
        super()._check_params()
        if self.k is not None and self.k < 1:
            raise UserError(f"rce-lt: k must be >= 1, got {self.k}")
        if not 0 <= self.center <= 1 or self.projections < 1:
            raise UserError(f"rce-lt: need 0 <= center <= 1 and projections >= 1, got "
                            f"center={self.center}, projections={self.projections}")

    def _check_shape(self, input_shape: list[int]) -> None:
        _, h, w = input_shape
        band = self.k if self.k is not None else default_band(h)
        if not 1 <= band < min(h, w):
            raise UserError(f"rce-lt: k must be in [1, {min(h, w) - 1}] for {h} x {w} images, "
                            f"got {band}")
        self._band = band

    def band(self, input_shape: list[int]) -> int:
        """The effective ``k`` for images of ``input_shape`` [C, H, W]."""
        return self.k if self.k is not None else default_band(input_shape[1])

    def _project(self, x: Tensor) -> Tensor:
        assert self._band is not None
        for _ in range(self.projections):
            x = remove_low_band(x, self._band, self.center).clamp(0.0, 1.0)
        return x

    def parameters(self) -> dict[str, Any]:
        """As declared, with ``k`` resolved once an input shape has been seen."""
        return {**super().parameters(), "k": self._band}
