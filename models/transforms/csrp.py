"""CSRP, Certain Scale with Random Padding: the seed paper's Algorithm 1 as one batched gather.

Seed paper: "Mitigating Query-based Neural Network Fingerprinting via Data Augmentation",
Algorithm 1. For an image of H x W, scale limit ``sigma > 1`` and padding ``p >= 0``:

1. ``Hmax = floor(H * sigma)``, ``Wmax = floor(W * sigma)``; ``Hr = Hmax - p``, ``Wr = Wmax - p``
   (the paper's prose once writes ``Hmax + p``; the algorithm box says ``Hmax - p``, used here).
2. Up-resize: ``I'(x, y) = I(round(x * H / Hr), round(y * W / Wr))`` for ``x < Hr, y < Wr``.
3. Pad zeros: ``x1`` rows before and ``p - x1`` after (H axis), ``y1`` columns before and
   ``p - y1`` after (W axis), giving ``Hmax x Wmax``; ``x1, y1`` uniform in ``{0..p}``.
4. Down-resize: ``out(x, y) = Im(round(x * Hmax / H), round(y * Wmax / W))`` for ``x < H, y < W``.

``round`` is round-half-to-even (``torch.round``, as numpy's), computed in float64 so that exact
halves stay halves; every index is clamped into range. Every output pixel is therefore either 0
or one input pixel, chosen by a per-sample source row and source column: once the offsets are
drawn the transform is one gather over the whole batch plus a mask, differentiable in the pixels.

Paper settings: CIFAR-10 ``sigma=1.16, p=3``; CIFAR-100 ``sigma=1.23, p=5``; TinyImageNet (64 px)
``sigma=1.25, p=14`` (see ``PAPER_SETTINGS``).

Randomness is apart from the transform (kornia-style): offsets are drawn first, on the CPU from a
``torch.Generator`` (so a seed gives the same offsets on every device), then applied
deterministically; any run replays from the saved offsets or the seed.

Speed: the per-(H, W, sigma, p) index tables are tiny and cached per device. When no gradient is
needed, large CPU batches go through a ``torch.compile``-fused kernel (one pass, no index tensor
materialised); set the environment variable ``CSRP_COMPILE=0`` (or pass ``backend="eager"``) to
turn that off. If compiling fails the eager gather is used and a warning is issued once.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from models.csrp_tables import axis_table as csrp_axis_table
from models.csrp_tables import check_sigma_p as _check_sigma_p
from models.csrp_tables import csrp_geometry
from models.transforms.base import (
    Option,
    RandomTransform,
    check_batch_shape,
    check_generator,
    check_images,
)
from models.transforms.registry import register_transform

__all__ = [
    "CSRP",
    "PAPER_SETTINGS",
    "compile_enabled",
    "csrp",
    "csrp_geometry",
    "draw_offsets",
]

_log = logging.getLogger(__name__)

#: The seed paper's (sigma, p) per data set.
PAPER_SETTINGS: dict[str, tuple[float, int]] = {
    "cifar10": (1.16, 3),
    "cifar100": (1.23, 5),
    "tinyimagenet": (1.25, 14),
}

Backend = Literal["auto", "eager", "compiled"]
_BACKENDS: tuple[str, ...] = ("auto", "eager", "compiled")

#: Environment variable that turns the ``torch.compile`` path off ("0", "false", "off", "no").
COMPILE_ENV = "CSRP_COMPILE"
#: ``backend="auto"`` uses the compiled kernel on CPU from this many elements (N*C*H*W) up; below
#: it the call overhead of a compiled function outweighs what it saves.
AUTO_COMPILE_MIN_NUMEL = 1 << 16
#: The eager path precomputes one flat index per (x1, y1) pair when the table stays this small.
_FLAT_TABLE_MAX_ENTRIES = 1 << 21


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def _check_offsets(offsets: object, batch_size: int, p: int) -> Tensor:
    if not isinstance(offsets, Tensor):
        raise ValueError(f"offsets must be an integer tensor [N, 2]; got {type(offsets).__name__}")
    if offsets.dtype.is_floating_point or offsets.dtype.is_complex or offsets.dtype == torch.bool:
        raise ValueError(f"offsets must be an integer tensor [N, 2]; got dtype {offsets.dtype}")
    if tuple(offsets.shape) != (batch_size, 2):
        raise ValueError(
            f"offsets must have shape [N, 2] = [{batch_size}, 2]; got {tuple(offsets.shape)}"
        )
    if offsets.numel() and (int(offsets.min()) < 0 or int(offsets.max()) > p):
        raise ValueError(
            f"offsets must lie in 0..p = 0..{p}; got values in "
            f"{int(offsets.min())}..{int(offsets.max())}"
        )
    return offsets


# --------------------------------------------------------------------------------------------
# index tables
# --------------------------------------------------------------------------------------------


def _axis_table(length: int, scaled: int, resized: int, p: int) -> tuple[Tensor, Tensor]:
    """One axis's source index and keep-mask for every offset 0..p (``models.csrp_tables``,
    shared with the ONNX serving graph so that both agree pixel for pixel)."""
    src, keep = csrp_axis_table(length, scaled, resized, p)
    return torch.from_numpy(src.copy()), torch.from_numpy(keep.copy())


@dataclass(frozen=True)
class _Tables:
    """Cached per (H, W, sigma, p, device)."""

    rows: Tensor  # [P, H] source row, -1 where the output row is padding
    cols: Tensor  # [P, W] source column, -1 where the output column is padding
    flat: Tensor | None  # [P*P, H*W] flat source index (0 where dropped); None when too large
    flat_keep: Tensor | None  # [P*P, 1, H, W] bool


@functools.lru_cache(maxsize=64)
def _tables(height: int, width: int, sigma: float, p: int, device: torch.device) -> _Tables:
    h_max, w_max, h_r, w_r = csrp_geometry(height, width, sigma, p)
    rows, rows_keep = _axis_table(height, h_max, h_r, p)
    cols, cols_keep = _axis_table(width, w_max, w_r, p)
    n_off = p + 1
    flat = flat_keep = None
    if n_off * n_off * height * width <= _FLAT_TABLE_MAX_ENTRIES:
        flat = (rows[:, None, :, None] * width + cols[None, :, None, :]).reshape(n_off * n_off, -1)
        flat_keep = (rows_keep[:, None, :, None] & cols_keep[None, :, None, :]).reshape(
            n_off * n_off, 1, height, width
        )
        flat, flat_keep = flat.to(device), flat_keep.to(device)
    return _Tables(
        rows=torch.where(rows_keep, rows, -1).to(device),
        cols=torch.where(cols_keep, cols, -1).to(device),
        flat=flat,
        flat_keep=flat_keep,
    )


# --------------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------------


def _gather_separable(images: Tensor, offsets: Tensor, rows_t: Tensor, cols_t: Tensor) -> Tensor:
    """Look up rows [N, H] and cols [N, W] by offset, gather once, zero the padding.

    Eager fallback for large tables, and the function ``torch.compile`` fuses into one loop.
    """
    n, c, h, w = images.shape
    rows = rows_t[offsets[:, 0]]
    cols = cols_t[offsets[:, 1]]
    keep = ((rows[:, :, None] >= 0) & (cols[:, None, :] >= 0)).unsqueeze(1)
    flat = rows.clamp(min=0)[:, :, None] * w + cols.clamp(min=0)[:, None, :]
    out = torch.gather(images.reshape(n, c, h * w), 2, flat.view(n, 1, h * w).expand(n, c, h * w))
    return torch.where(keep, out.view(n, c, h, w), 0.0)


def _gather_flat(images: Tensor, offsets: Tensor, tables: _Tables) -> Tensor:
    """Eager path with the precomputed per-(x1, y1) flat index: one gather and one mask."""
    assert tables.flat is not None and tables.flat_keep is not None
    n, c, h, w = images.shape
    key = offsets[:, 0] * tables.rows.shape[0] + offsets[:, 1]
    index = tables.flat[key].view(n, 1, h * w).expand(n, c, h * w)
    out = torch.gather(images.reshape(n, c, h * w), 2, index).view(n, c, h, w)
    return out * tables.flat_keep[key]


# Measured on CPU: a scalar loop beats inductor's vectorised indirect loads, and the indices are
# in range by construction (tables clamp, offsets are validated), so the per-element bounds
# assertions are dropped.
_COMPILE_OPTIONS: dict[str, object] = {"cpp.simdlen": 1, "assert_indirect_indexing": False}
_compile_lock = threading.Lock()
_compiled_kernel: Callable[..., Tensor] | None = None
_compile_failed = False


def compile_enabled() -> bool:
    """Whether the ``torch.compile`` path may be used (env ``CSRP_COMPILE`` not off, not failed)."""
    flag = os.environ.get(COMPILE_ENV, "auto").strip().lower()
    return flag not in {"0", "false", "off", "no"} and not _compile_failed


def _compiled() -> Callable[..., Tensor] | None:
    global _compiled_kernel
    if _compiled_kernel is None and not _compile_failed:
        with _compile_lock:
            if _compiled_kernel is None and not _compile_failed:
                try:
                    _compiled_kernel = torch.compile(
                        _gather_separable, dynamic=None, options=_COMPILE_OPTIONS
                    )
                except Exception as error:  # compile unavailable on this build/platform
                    _disable_compile(error)
    return _compiled_kernel


def _disable_compile(error: BaseException) -> None:
    global _compile_failed
    _compile_failed = True
    warnings.warn(
        f"CSRP: torch.compile path unavailable ({type(error).__name__}: {error}); "
        "using the eager gather from now on",
        RuntimeWarning,
        stacklevel=3,
    )


def _use_compiled(images: Tensor, backend: str) -> bool:
    if backend == "eager" or not compile_enabled():
        return False
    if images.requires_grad and torch.is_grad_enabled():
        return False  # keep autograd on the plain eager graph
    if backend == "compiled":
        return True
    return images.device.type == "cpu" and images.numel() >= AUTO_COMPILE_MIN_NUMEL


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def draw_offsets(batch_size: int, p: int, generator: torch.Generator | None = None) -> Tensor:
    """Per-sample ``(x1, y1)`` uniform in ``0..p``: int64 ``[batch_size, 2]`` on the CPU."""
    if isinstance(p, bool) or not isinstance(p, int) or p < 0:
        raise ValueError(f"p must be an integer >= 0 (padding); got {p!r}")
    if batch_size < 0:
        raise ValueError(f"batch_size must be >= 0; got {batch_size}")
    check_generator(generator)
    return torch.randint(0, p + 1, (batch_size, 2), generator=generator, dtype=torch.int64)


def csrp(
    images: Tensor,
    sigma: float,
    p: int,
    offsets: Tensor | None = None,
    generator: torch.Generator | None = None,
    *,
    backend: Backend = "auto",
) -> Tensor:
    """Apply CSRP (seed paper, Algorithm 1) to a batch, one gather for the whole batch.

    Args:
        images: float tensor ``[N, C, H, W]`` with values in ``[0, 1]`` (padding is 0 in that
            space, so normalise afterwards), on any device.
        sigma: scale limit, ``> 1``. Paper: CIFAR-10 1.16, CIFAR-100 1.23, TinyImageNet 1.25.
        p: zero padding, integer ``>= 0`` with ``floor(H*sigma) - p >= 1`` and
            ``floor(W*sigma) - p >= 1``. Paper: CIFAR-10 3, CIFAR-100 5, TinyImageNet 14.
        offsets: optional integer tensor ``[N, 2]``; ``offsets[n] = (x1, y1)`` are the rows (H
            axis) and columns (W axis) of zeros put before the resized image, each in ``0..p``.
            When omitted they are drawn with ``draw_offsets(N, p, generator)``.
        generator: CPU ``torch.Generator`` for the offsets (ignored when ``offsets`` is given);
            ``None`` uses torch's global CPU generator.
        backend: ``"auto"`` (compiled kernel for large CPU batches that need no gradient, unless
            ``CSRP_COMPILE=0``), ``"eager"`` (always the plain gather), or ``"compiled"``
            (``torch.compile`` on any device when no gradient is needed; falls back to eager
            with a warning if compiling fails).

    Returns:
        Tensor of the same shape, dtype and device; every pixel is 0 or an input pixel.
        Differentiable in ``images`` (the gradient flows through the gather to kept pixels).

    Raises:
        ValueError: bad ``images``, ``sigma``, ``p``, ``offsets``, ``generator`` or ``backend``.
    """
    images = check_images(images)
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(_BACKENDS)}; got {backend!r}")
    n, _, h, w = images.shape
    csrp_geometry(h, w, sigma, p)
    offsets = draw_offsets(n, p, generator) if offsets is None else _check_offsets(offsets, n, p)
    if n == 0:
        return images.clone()
    tables = _tables(h, w, float(sigma), p, images.device)
    offsets = offsets.to(device=images.device, dtype=torch.int64, non_blocking=True)

    if _use_compiled(images, backend):
        kernel = _compiled()
        if kernel is not None:
            try:
                return kernel(images, offsets, tables.rows, tables.cols)
            except Exception as error:  # compiler missing/broken: eager from now on
                _disable_compile(error)
    if tables.flat is not None:
        return _gather_flat(images, offsets, tables)
    return _gather_separable(images, offsets, tables.rows, tables.cols)


@register_transform("csrp")
class CSRP(RandomTransform):
    """CSRP as a registered transform: ``generate_params`` then deterministic ``apply_params``.

    ``CSRP(sigma, p)(images, generator)`` draws fresh per-sample offsets and applies them. To
    replay a run, keep ``params = t.generate_params(images.shape, generator)`` and call
    ``t.apply_params(images, params)``. See ``csrp`` for the algorithm (seed paper, Algorithm 1)
    and ``PAPER_SETTINGS`` for the paper's values (CIFAR-10: ``sigma=1.16, p=3``).

    Args:
        sigma: scale limit, ``> 1`` (no default; the zoo uses 1.23).
        p: zero padding, integer ``>= 0`` (no default; the zoo uses 6).
        backend: see ``csrp`` (default ``"auto"``).
    """

    options = (Option("sigma", float, "scale limit, > 1"),
               Option("p", int, "zero padding, integer >= 0"))

    def __init__(self, sigma: float, p: int, *, backend: Backend = "auto") -> None:
        super().__init__()
        _check_sigma_p(sigma, p)
        self.sigma = float(sigma)
        self.p = p
        self.backend: Backend = "auto"
        self.set_kernel(backend)

    def generate_params(self, batch_shape: Sequence[int],
                        generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``{"offsets": int64 [N, 2]}`` on the CPU, uniform in ``0..p``."""
        return {"offsets": draw_offsets(check_batch_shape(batch_shape)[0], self.p, generator)}

    def apply_params(self, images: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Deterministic CSRP with the given ``params["offsets"]``."""
        if not isinstance(params, dict) or "offsets" not in params:
            raise ValueError("params must be a dict with key 'offsets' (from generate_params)")
        return csrp(images, self.sigma, self.p, offsets=params["offsets"], backend=self.backend)

    def check_fits(self, input_shape: Sequence[int]) -> None:
        """``ValueError`` when ``floor(H * sigma) - p < 1`` (the image would vanish)."""
        _, height, width = input_shape
        csrp_geometry(height, width, self.sigma, self.p)

    def set_kernel(self, kernel: str) -> None:
        """``"auto"``, ``"eager"`` or ``"compiled"`` (see ``csrp``)."""
        if kernel not in _BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(_BACKENDS)}; got {kernel!r}")
        self.backend = kernel  # type: ignore[assignment]

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, p={self.p}, backend={self.backend!r}"
