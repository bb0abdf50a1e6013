"""CSRP's geometry, index tables and offset draws in NumPy alone (no torch), for the edge server.

Seed paper: "Mitigating Query-based Neural Network Fingerprinting via Data Augmentation",
Algorithm 1 (see ``models.transforms.csrp`` for the algorithm and its rounding rules). Every
output pixel of CSRP is 0 or the input pixel at (source row, source column), and both depend
only on the per-sample offsets ``(x1, y1)``: so the transform is four small tables per
(H, W, sigma, p), looked up by offset. ``models.transforms.csrp`` (torch) and the ONNX serving
graph (``models.onnx_serving``) both use these tables, so they agree pixel for pixel.

``TorchCompatibleOffsets`` draws offsets exactly as ``torch.randint(0, p + 1, (N, 2),
generator=torch.Generator().manual_seed(seed))`` does, in NumPy: torch's CPU generator is a
32-bit Mersenne Twister seeded with ``seed & 0xffffffff`` (the same initialisation as NumPy's
legacy ``RandomState``), and for a range below 2**32 ``randint`` takes one 32-bit output per
value modulo the range. The parity is tested over seeds, batch sizes and paddings; it is what
keeps the server's ``--seed`` replay contract without torch.

This module is outside ``models.transforms`` on purpose: importing that package imports torch.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CsrpTables",
    "TorchCompatibleOffsets",
    "axis_table",
    "check_sigma_p",
    "csrp_geometry",
    "csrp_spec",
    "csrp_tables",
]


#: Bounds of CSRP's options: the paper's settings are sigma 1.16-1.25 and p 3-14; a scale limit
#: of 4 already quadruples every side, and larger values only make the index tables huge (a
#: config with sigma 1e308 crashed the server's start-up).
MAX_SIGMA, MAX_P = 4.0, 1024


def check_sigma_p(sigma: object, p: object) -> None:
    """``ValueError`` unless ``sigma`` is a real in (1, MAX_SIGMA] and ``p`` an integer in
    0..MAX_P."""
    if isinstance(sigma, bool) or not isinstance(sigma, int | float):
        raise ValueError(f"sigma must be a real number > 1; got {sigma!r}")
    if not math.isfinite(sigma) or not 1 < sigma <= MAX_SIGMA:
        raise ValueError(f"sigma must be a number in (1, {MAX_SIGMA:g}] (scale limit); got "
                         f"{sigma!r}")
    if isinstance(p, bool) or not isinstance(p, int):
        raise ValueError(f"p must be an integer >= 0 (padding); got {p!r}")
    if not 0 <= p <= MAX_P:
        raise ValueError(f"p must be an integer in 0..{MAX_P} (padding); got {p}")


def csrp_geometry(height: int, width: int, sigma: float, p: int) -> tuple[int, int, int, int]:
    """``(Hmax, Wmax, Hr, Wr)`` of Algorithm 1 for an ``height x width`` image.

    ``floor(H * sigma)`` is taken on the Python float product, as a NumPy port would (so e.g.
    ``25 * 1.16`` gives 28, not 29; the paper sizes 28, 32 and 64 px are unaffected).

    Raises ``ValueError`` when the arguments are out of range or the resized image vanishes
    (``Hmax - p < 1`` or ``Wmax - p < 1``).
    """
    check_sigma_p(sigma, p)
    if height < 1 or width < 1:
        raise ValueError(f"images must have H >= 1 and W >= 1; got H={height}, W={width}")
    h_max = math.floor(height * sigma)
    w_max = math.floor(width * sigma)
    h_r, w_r = h_max - p, w_max - p
    if h_r < 1 or w_r < 1:
        raise ValueError(
            f"p={p} makes the image vanish for H x W = {height} x {width}, sigma={sigma}: "
            f"floor(H*sigma) - p = {h_r} and floor(W*sigma) - p = {w_r} must both be >= 1, "
            f"so p must be in 0..{min(h_max, w_max) - 1}"
        )
    return h_max, w_max, h_r, w_r


def csrp_spec(spec: Mapping[str, Any], input_shape: tuple[int, int, int]) -> tuple[float, int]:
    """``(sigma, p)`` of a config.json preprocessing spec ``{"name": "csrp", "sigma", "p"}``,
    checked against the input shape ``(C, H, W)`` (``ValueError`` naming the problem)."""
    if spec.get("name") != "csrp":
        raise ValueError(f"not a CSRP spec: {dict(spec)!r}")
    unknown = sorted(set(spec) - {"name", "sigma", "p"})
    if unknown:
        raise ValueError(f"csrp: unknown option(s) {', '.join(unknown)} (options: sigma, p)")
    if "sigma" not in spec or "p" not in spec:
        raise ValueError("csrp: sigma and p are required")
    sigma, p = spec["sigma"], spec["p"]
    check_sigma_p(sigma, p)
    _, height, width = input_shape
    csrp_geometry(height, width, float(sigma), p)
    return float(sigma), int(p)


def axis_table(length: int, scaled: int, resized: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Source index and keep-mask of one axis for every offset 0..p: two ``[p + 1, length]``.

    ``scaled`` is ``Hmax`` (or ``Wmax``), ``resized`` is ``Hr`` (or ``Wr``). Output position ``i``
    reads padded position ``m = round(i * scaled / length)``; with ``o`` zeros before, that is
    resized position ``r = m - o``, kept when ``0 <= r < resized``, and source position
    ``round(r * length / resized)``. ``np.round`` rounds half to even, as ``torch.round`` does;
    products are exact integers and the one division is float64.
    """
    i = np.arange(length, dtype=np.float64)
    m = np.clip(np.round(i * scaled / length).astype(np.int64), 0, scaled - 1)
    r = m[None, :] - np.arange(p + 1, dtype=np.int64)[:, None]  # [p+1, length]
    keep = (r >= 0) & (r < resized)
    src = np.round(np.maximum(r, 0).astype(np.float64) * length / resized).astype(np.int64)
    src = np.clip(src, 0, length - 1)
    return np.where(keep, src, 0), keep


@dataclass(frozen=True)
class CsrpTables:
    """Per (H, W, sigma, p): source row / column (0 where dropped) and keep masks, by offset."""

    rows: np.ndarray  # int64 [p+1, H]
    rows_keep: np.ndarray  # bool [p+1, H]
    cols: np.ndarray  # int64 [p+1, W]
    cols_keep: np.ndarray  # bool [p+1, W]

    def apply(self, images: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """CSRP of float ``images [N, C, H, W]`` with int ``offsets [N, 2]``, in NumPy (the
        reference the ONNX graph and the torch kernels are tested against)."""
        n = images.shape[0]
        rows, cols = self.rows[offsets[:, 0]], self.cols[offsets[:, 1]]  # [N, H], [N, W]
        batch = np.arange(n)[:, None, None, None]
        channel = np.arange(images.shape[1])[None, :, None, None]
        out = images[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]
        keep = (self.rows_keep[offsets[:, 0]][:, :, None]
                & self.cols_keep[offsets[:, 1]][:, None, :])[:, None]
        return np.where(keep, out, np.zeros((), dtype=images.dtype))


@functools.lru_cache(maxsize=64)
def csrp_tables(height: int, width: int, sigma: float, p: int) -> CsrpTables:
    """The cached tables for an ``height x width`` image (read-only arrays)."""
    h_max, w_max, h_r, w_r = csrp_geometry(height, width, sigma, p)
    rows, rows_keep = axis_table(height, h_max, h_r, p)
    cols, cols_keep = axis_table(width, w_max, w_r, p)
    for array in (rows, rows_keep, cols, cols_keep):
        array.setflags(write=False)
    return CsrpTables(rows, rows_keep, cols, cols_keep)


class TorchCompatibleOffsets:
    """A NumPy stream of CSRP offsets identical to torch's for the same seed (see module doc).

    ``draw(n, p)`` equals ``torch.randint(0, p + 1, (n, 2), generator=g, dtype=torch.int64)``
    for ``g = torch.Generator().manual_seed(seed)`` after the same sequence of earlier draws.
    """

    _STATE_WORDS = 624  # MT19937's state: a fresh stream starts at position 624

    def __init__(self, seed: int | None) -> None:
        """``seed=None`` seeds the whole 19937-bit state from the OS (NumPy's ``SeedSequence``),
        stronger than torch, whose seed keeps 32 bits; such a stream matches no torch one."""
        if seed is None:
            self._bits = np.random.MT19937()
            return
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0; got {seed!r}")
        key = np.random.RandomState(seed & 0xFFFFFFFF).get_state()[1]
        self._bits = np.random.MT19937()
        self._bits.state = {"bit_generator": "MT19937",
                            "state": {"key": key, "pos": self._STATE_WORDS}}

    def draw(self, n: int, p: int) -> np.ndarray:
        """Offsets ``(x1, y1)`` uniform in ``0..p``: int64 ``[n, 2]``."""
        if isinstance(p, bool) or not isinstance(p, int) or p < 0:
            raise ValueError(f"p must be an integer >= 0 (padding); got {p!r}")
        if n < 0:
            raise ValueError(f"n must be >= 0; got {n}")
        raw = self._bits.random_raw(2 * n)
        return (np.asarray(raw, dtype=np.uint64) % np.uint64(p + 1)).astype(np.int64).reshape(n, 2)
