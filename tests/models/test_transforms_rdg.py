"""RDG (Qiu et al. 2021): identity at 0, loop reference, range, replay, autograd, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from models.transforms import RDG, draw_rdg_params, rdg
from models.transforms.rdg import _source_coords


def reference_coords(length: int, steps: np.ndarray) -> np.ndarray:
    """Piecewise-linear source coordinates of one axis, loop by loop. steps: [num_cells]."""
    k_cells = len(steps)
    coords = np.zeros(length)
    start = 0.0
    for k in range(k_cells):
        b0, b1 = (k * length) // k_cells, ((k + 1) * length) // k_cells
        for t in range(b0, b1):
            coords[t] = start + steps[k] * (t - b0)
        start += (b1 - b0) * steps[k]
    return np.clip(coords, 0, length - 1)


def reference_remap(image: np.ndarray, cy: np.ndarray, cx: np.ndarray) -> np.ndarray:
    """Bilinear remap with reflect-101 borders (cv2.remap semantics, exact weights)."""
    _, h, w = image.shape

    def reflect101(i: int, n: int) -> int:
        if n == 1:
            return 0
        while i < 0 or i > n - 1:
            i = -i if i < 0 else 2 * (n - 1) - i
        return i

    out = np.zeros_like(image)
    for i in range(h):
        for j in range(w):
            y, x = cy[i], cx[j]
            y0, x0 = math.floor(y), math.floor(x)
            wy, wx = y - y0, x - x0
            for dy, ay in ((0, 1 - wy), (1, wy)):
                for dx, ax in ((0, 1 - wx), (1, wx)):
                    yy, xx = reflect101(y0 + dy, h), reflect101(x0 + dx, w)
                    out[:, i, j] += ay * ax * image[:, yy, xx]
    return out


@pytest.mark.parametrize(("h", "w", "num_cells"), [(12, 10, 10), (7, 5, 3), (16, 16, 4), (5, 3, 8)])
def test_matches_loop_reference(h: int, w: int, num_cells: int) -> None:
    images = torch.rand(3, 2, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    params = draw_rdg_params(3, 0.3, num_cells, torch.Generator().manual_seed(1))
    out = rdg(images, 0.3, num_cells, params=params)
    for n in range(3):
        cx = reference_coords(w, params["xsteps"][n].numpy())
        cy = reference_coords(h, params["ysteps"][n].numpy())
        expected = reference_remap(images[n].numpy(), cy, cx)
        np.testing.assert_allclose(out[n].numpy(), expected, rtol=0, atol=1e-10)


def test_identity_at_zero_distortion() -> None:
    images = torch.rand(4, 3, 32, 32)
    out = rdg(images, 0.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, images, rtol=0, atol=0)
    assert torch.equal(RDG(0.0)(images), images)


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_unit_factors_through_grid_sample_are_identity(dtype: torch.dtype, atol: float) -> None:
    images = torch.rand(4, 3, 32, 32, dtype=dtype)
    ones = {k: torch.ones(4, 10, dtype=torch.float64) for k in ("xsteps", "ysteps")}
    torch.testing.assert_close(rdg(images, 0.1, params=ones), images, rtol=0, atol=atol)
    coords = _source_coords(32, ones["xsteps"])
    assert torch.equal(coords, torch.arange(32, dtype=torch.float64).expand(4, 32))


def test_source_coordinates_are_monotone_and_clamped() -> None:
    params = draw_rdg_params(64, 0.25, 10, torch.Generator().manual_seed(2))
    coords = _source_coords(37, params["xsteps"])
    assert (coords[:, 1:] >= coords[:, :-1]).all()
    assert coords.min() >= 0 and coords.max() <= 36


def test_output_stays_in_unit_range() -> None:
    gen = torch.Generator().manual_seed(3)
    images = torch.rand(16, 3, 32, 32, generator=gen)
    images[:, :, ::3] = 1.0
    images[:, :, 1::3] = 0.0
    out = rdg(images, 0.25, generator=gen)
    assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-6


def test_replay_from_params_and_seed_and_seeds_differ() -> None:
    images = torch.rand(8, 3, 20, 20)
    t = RDG(0.25, 10)
    params = t.generate_params(images.shape, torch.Generator().manual_seed(5))
    assert set(params) == {"xsteps", "ysteps"} and params["xsteps"].shape == (8, 10)
    assert (params["xsteps"] >= 0.75).all() and (params["xsteps"] <= 1.25).all()
    a = t.apply_params(images, params)
    b = t(images, torch.Generator().manual_seed(5))
    c = rdg(images, generator=torch.Generator().manual_seed(5))
    d = t(images, torch.Generator().manual_seed(6))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a, c, rtol=0, atol=0)
    assert not torch.equal(a, d)
    assert not torch.equal(params["xsteps"][0], params["xsteps"][1])  # per sample


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_device_and_gradient(dtype: torch.dtype) -> None:
    images = torch.rand(3, 2, 9, 13, dtype=dtype, requires_grad=True)
    out = rdg(images, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == dtype and out.device == images.device
    out.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    images = torch.rand(8, 3, 32, 32, dtype=torch.float64)
    cpu = rdg(images, generator=torch.Generator().manual_seed(1))
    cuda = rdg(images.cuda(), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=0, atol=1e-10)


def test_module_nests_and_keeps_nn_module_apply() -> None:
    model = nn.Sequential(RDG(), nn.Flatten())
    seen: list[str] = []
    model.apply(lambda m: seen.append(type(m).__name__))
    assert "RDG" in seen
    assert RDG(0.1, 4).spec() == {"name": "rdg", "distort_limit": 0.1, "num_cells": 4}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"distort_limit": 1.0}, r"distort_limit must be a number in \[0, 1\)"),
        ({"distort_limit": -0.1}, r"distort_limit must be a number in \[0, 1\)"),
        ({"distort_limit": "0.2"}, r"distort_limit must be a number in \[0, 1\)"),
        ({"num_cells": 0}, r"num_cells must be an integer in 1\.\.1024"),
        ({"num_cells": 2.5}, r"num_cells must be an integer in 1\.\.1024"),
        ({"images": torch.zeros(2, 3, 8, 8, dtype=torch.int64)}, r"images must be a floating"),
        ({"images": torch.zeros(3, 8, 8)}, r"images must have rank 4"),
        ({"params": {"xsteps": torch.ones(2, 10)}}, r"params must be a dict with keys"),
        (
            {"params": {"xsteps": torch.ones(2, 9), "ysteps": torch.ones(2, 9)}},
            r"params\['xsteps'\] must have shape \[N, num_cells\] = \[2, 10\]",
        ),
        (
            {"params": {"xsteps": torch.ones(2, 10), "ysteps": torch.full((2, 10), 1.5)}},
            r"params\['ysteps'\] must lie in \[1 - distort_limit, 1 \+ distort_limit\]",
        ),
        (
            {
                "params": {
                    "xsteps": torch.ones(2, 10, dtype=torch.int64),
                    "ysteps": torch.ones(2, 10),
                }
            },
            r"params\['xsteps'\] must be a float tensor",
        ),
        ({"generator": 3}, r"generator must be a CPU torch.Generator"),
    ],
)
def test_value_errors(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"images": torch.rand(2, 3, 8, 8), "distort_limit": 0.25}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        rdg(**args)  # type: ignore[arg-type]
