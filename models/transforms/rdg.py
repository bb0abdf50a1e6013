"""RDG, random distortion over grids: the CSRP paper's comparison transform, batched.

Qiu et al., "Mitigating Advanced Adversarial Attacks with More Advanced Gradient Obfuscation
Techniques" (IEEE Trans. Computers, 2021), authors' ``defense.py``: split each axis into
``num_cells`` cells (10 there), multiply each cell's length by ``1 + U(-d, d)``
(``d = distort_limit``, 0.25 there), build monotone source-coordinate maps by piecewise linear
interpolation over the distorted cells, and remap the image with bilinear interpolation and
reflect-101 borders.

Choices made here, where the authors' code is tied to 299-px images or to OpenCV:

* Cell bounds are ``floor(k * L / num_cells)``, ``k = 0..num_cells`` (an even split with no
  remainder cell). Within cell ``k`` (start ``b_k``, distorted start ``e_k``) pixel ``t`` reads
  source coordinate ``e_k + f_k * (t - b_k)`` (a linspace that excludes the cell's end point), so
  ``distort_limit = 0`` is the identity.
* ``distort_limit = 0`` returns an exact copy. Through ``grid_sample`` unit factors give the
  identity only to the image dtype's coordinate precision (float32: a few 1e-6 on 32 px).
* Coordinates are clamped to ``[0, L - 1]``, generalising the authors' hard-coded 298.
* The remap is ONE ``F.grid_sample`` over the batch (bilinear, ``align_corners=True`` so that
  coordinate ``t`` is pixel ``t``, ``padding_mode="reflection"``). Because every coordinate is
  clamped inside the image the border mode only ever meets a zero-weight neighbour, so this
  equals OpenCV's ``remap(..., INTER_LINEAR, BORDER_REFLECT_101)`` up to OpenCV's 1/32-pixel
  fixed-point weights (this computes exact bilinear weights).

Randomness is apart from the transform (kornia-style): per-sample cell factors are drawn first on
the CPU from a ``torch.Generator``, then applied deterministically; runs replay from the saved
params or the seed. Differentiable in the pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from models.transforms.base import (
    Option,
    RandomTransform,
    check_batch_shape,
    check_generator,
    check_images,
)
from models.transforms.registry import register_transform

__all__ = ["RDG", "draw_rdg_params", "rdg"]

_PARAM_KEYS = ("xsteps", "ysteps")


#: More cells than pixels on a side distort nothing more; 1e12 of them allocated 16 TB.
MAX_CELLS = 1024


def _check_rdg_args(distort_limit: float, num_cells: int) -> None:
    if isinstance(distort_limit, bool) or not isinstance(distort_limit, int | float):
        raise ValueError(f"distort_limit must be a number in [0, 1); got {distort_limit!r}")
    if not (math.isfinite(distort_limit) and 0 <= distort_limit < 1):
        raise ValueError(f"distort_limit must be a number in [0, 1); got {distort_limit!r}")
    if isinstance(num_cells, bool) or not isinstance(num_cells, int) \
            or not 1 <= num_cells <= MAX_CELLS:
        raise ValueError(f"num_cells must be an integer in 1..{MAX_CELLS}; got {num_cells!r}")


def draw_rdg_params(
    batch_size: int,
    distort_limit: float = 0.25,
    num_cells: int = 10,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Per-sample cell factors ``1 + U(-d, d)``: float64 ``[batch_size, num_cells]`` on the CPU.

    ``"xsteps"`` distort the W axis (columns), ``"ysteps"`` the H axis (rows).
    """
    _check_rdg_args(distort_limit, num_cells)
    check_generator(generator)
    if batch_size < 0:
        raise ValueError(f"batch_size must be >= 0; got {batch_size}")
    shape = (batch_size, num_cells)
    u = torch.rand((2, *shape), generator=generator, dtype=torch.float64)
    steps = 1.0 + distort_limit * (2.0 * u - 1.0)
    return {"xsteps": steps[0], "ysteps": steps[1]}


def _check_params(
    params: object, batch_size: int, distort_limit: float, num_cells: int
) -> dict[str, Tensor]:
    if not isinstance(params, dict) or any(k not in params for k in _PARAM_KEYS):
        raise ValueError("params must be a dict with keys 'xsteps' and 'ysteps' (generate_params)")
    for key in _PARAM_KEYS:
        steps = params[key]
        if not isinstance(steps, Tensor) or not steps.is_floating_point():
            raise ValueError(f"params[{key!r}] must be a float tensor [N, num_cells]")
        if tuple(steps.shape) != (batch_size, num_cells):
            raise ValueError(
                f"params[{key!r}] must have shape [N, num_cells] = [{batch_size}, {num_cells}]; "
                f"got {tuple(steps.shape)}"
            )
        lo, hi = 1.0 - distort_limit, 1.0 + distort_limit
        if steps.numel() and not bool(((steps >= lo - 1e-9) & (steps <= hi + 1e-9)).all()):
            raise ValueError(
                f"params[{key!r}] must lie in [1 - distort_limit, 1 + distort_limit] = "
                f"[{lo:g}, {hi:g}]"
            )
    return params  # type: ignore[return-value]


def _source_coords(length: int, steps: Tensor) -> Tensor:
    """Monotone source coordinates ``[N, length]`` (float64) for cell factors ``steps [N, K]``."""
    num_cells = steps.shape[1]
    bounds = (torch.arange(num_cells + 1, device=steps.device) * length) // num_cells
    cell_len = (bounds[1:] - bounds[:-1]).to(torch.float64)  # [K]
    ends = F.pad(torch.cumsum(cell_len * steps, dim=1), (1, 0))  # [N, K+1], ends[:, 0] = 0
    t = torch.arange(length, device=steps.device)
    cell = torch.searchsorted(bounds[1:], t, right=True)  # cell of each pixel, [length]
    coords = ends[:, cell] + steps[:, cell] * (t - bounds[cell]).to(torch.float64)
    return coords.clamp_(0.0, length - 1.0)


def _normalise(coords: Tensor, length: int) -> Tensor:
    if length == 1:
        return torch.zeros_like(coords)
    return coords * (2.0 / (length - 1)) - 1.0


def rdg(
    images: Tensor,
    distort_limit: float = 0.25,
    num_cells: int = 10,
    params: dict[str, Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Apply RDG (Qiu et al., IEEE Trans. Computers 2021) to a batch with one ``grid_sample``.

    Args:
        images: float tensor ``[N, C, H, W]`` with values in ``[0, 1]``, any device.
        distort_limit: ``d`` in ``[0, 1)``; each cell's length is scaled by ``1 + U(-d, d)``.
            Default 0.25 (the authors' setting); 0 is the identity.
        num_cells: cells per axis, ``>= 1``. Default 10 (the authors' setting).
        params: optional ``{"xsteps", "ysteps"}``, float ``[N, num_cells]`` factors in
            ``[1 - d, 1 + d]`` (from ``draw_rdg_params``); drawn from ``generator`` when omitted.
        generator: CPU ``torch.Generator`` for the factors; ``None`` uses the global generator.

    Returns:
        Tensor of the same shape, dtype and device, bilinear mixes of input pixels (so in
        ``[0, 1]`` up to float rounding); differentiable in ``images``.
    """
    images = check_images(images)
    _check_rdg_args(distort_limit, num_cells)
    n, _, h, w = images.shape
    if params is None:
        params = draw_rdg_params(n, distort_limit, num_cells, generator)
    else:
        params = _check_params(params, n, distort_limit, num_cells)
    if n == 0 or distort_limit == 0:
        # d = 0 is exactly the identity (every factor is 1); grid_sample would reproduce it only
        # to float32 coordinate precision (a few 1e-6 on 32-px images).
        return images.clone()
    xsteps = params["xsteps"].to(device=images.device, dtype=torch.float64)
    ysteps = params["ysteps"].to(device=images.device, dtype=torch.float64)
    gx = _normalise(_source_coords(w, xsteps), w)  # [N, W]
    gy = _normalise(_source_coords(h, ysteps), h)  # [N, H]
    grid = torch.stack((gx[:, None, :].expand(n, h, w), gy[:, :, None].expand(n, h, w)), dim=-1)
    grid = grid.to(images.dtype)
    return F.grid_sample(
        images, grid, mode="bilinear", padding_mode="reflection", align_corners=True
    )


@register_transform("rdg")
class RDG(RandomTransform):
    """RDG as a registered transform: ``generate_params`` then deterministic ``apply_params``.

    See ``rdg`` (Qiu et al., IEEE Trans. Computers 2021). Defaults are the authors' settings,
    ``distort_limit=0.25, num_cells=10``.
    """

    options = (Option("distort_limit", float, "distortion limit in [0, 1)", 0.25),
               Option("num_cells", int, "cells per axis, >= 1", 10))

    def __init__(self, distort_limit: float = 0.25, num_cells: int = 10) -> None:
        super().__init__()
        _check_rdg_args(distort_limit, num_cells)
        self.distort_limit = float(distort_limit)
        self.num_cells = num_cells

    @classmethod
    def strength_spec(cls, strength: float) -> dict[str, object]:
        """``distort_limit = 0.95 * strength`` (``stability``'s search range), 10 cells."""
        return {"name": "rdg", "distort_limit": round(0.95 * float(strength), 5),
                "num_cells": 10}

    def generate_params(self, batch_shape: Sequence[int],
                        generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``{"xsteps", "ysteps"}``: float64 ``[N, num_cells]`` on the CPU."""
        n = check_batch_shape(batch_shape)[0]
        return draw_rdg_params(n, self.distort_limit, self.num_cells, generator)

    def apply_params(self, images: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Deterministic RDG with the given params."""
        if params is None:
            raise ValueError("params must be a dict with keys 'xsteps' and 'ysteps'")
        return rdg(images, self.distort_limit, self.num_cells, params=params)
