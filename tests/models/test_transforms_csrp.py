"""CSRP (seed paper, Algorithm 1): exactness against references, replay, autograd, errors."""

from __future__ import annotations

import importlib
import itertools
import math
import os
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from models.transforms import (
    CSRP,
    PAPER_SETTINGS,
    RDG,
    build_transform,
    compile_enabled,
    csrp,
    csrp_geometry,
    describe,
    draw_offsets,
)
from models.transforms.csrp import _gather_separable, _tables


def _round_half_even(q: Fraction) -> int:
    return round(q)  # Python's round on a Fraction is exact round-half-to-even


def reference_csrp(image: np.ndarray, sigma: float, p: int, x1: int, y1: int) -> np.ndarray:
    """Algorithm 1 step by step with loops and exact rational coordinates. image: [C, H, W]."""
    c, h, w = image.shape
    h_max, w_max = math.floor(h * sigma), math.floor(w * sigma)
    h_r, w_r = h_max - p, w_max - p
    resized = np.zeros((c, h_r, w_r), dtype=image.dtype)
    for x in range(h_r):
        for y in range(w_r):
            sx = min(max(_round_half_even(Fraction(x * h, h_r)), 0), h - 1)
            sy = min(max(_round_half_even(Fraction(y * w, w_r)), 0), w - 1)
            resized[:, x, y] = image[:, sx, sy]
    padded = np.zeros((c, h_max, w_max), dtype=image.dtype)
    padded[:, x1 : x1 + h_r, y1 : y1 + w_r] = resized
    out = np.zeros_like(image)
    for x in range(h):
        for y in range(w):
            mx = min(max(_round_half_even(Fraction(x * h_max, h)), 0), h_max - 1)
            my = min(max(_round_half_even(Fraction(y * w_max, w)), 0), w_max - 1)
            out[:, x, y] = padded[:, mx, my]
    return out


def _distinct_images(n: int, c: int, h: int, w: int, dtype: torch.dtype = torch.float64):
    """Strictly positive, pairwise distinct pixel values in (0, 1]."""
    total = n * c * h * w
    return (torch.randperm(total, generator=torch.Generator().manual_seed(7)) + 1).to(dtype).view(
        n, c, h, w
    ) / total


def _all_offsets(p: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(p + 1), repeat=2)), dtype=torch.int64)


CASES = [
    (4, 4, 1.16, 0),
    (4, 4, 1.16, 3),
    (4, 4, 1.5, 2),
    (4, 4, 2.0, 4),
    (4, 4, 1.25, 1),
    (5, 3, 1.16, 2),
    (5, 3, 1.5, 1),
    (5, 3, 2.0, 3),
    (5, 3, 1.23, 0),
    (7, 6, 1.9, 5),
    (32, 32, 1.16, 3),
    (64, 64, 1.25, 14),
]


@pytest.mark.parametrize(("h", "w", "sigma", "p"), CASES)
def test_matches_loop_reference(h: int, w: int, sigma: float, p: int) -> None:
    offsets = _all_offsets(p)  # every (x1, y1) on small images, corners + a sample on large ones
    if len(offsets) * h * w > 20_000:
        pick = torch.randperm(len(offsets), generator=torch.Generator().manual_seed(0))[:4]
        corners = torch.tensor([[0, 0], [0, p], [p, 0], [p, p]])
        offsets = torch.cat([corners, offsets[pick]])
    images = _distinct_images(len(offsets), 2, h, w)
    out = csrp(images, sigma, p, offsets=offsets, backend="eager")
    for n, (x1, y1) in enumerate(offsets.tolist()):
        expected = reference_csrp(images[n].numpy(), sigma, p, x1, y1)
        np.testing.assert_array_equal(out[n].numpy(), expected, err_msg=f"offsets {(x1, y1)}")


def test_hand_worked_4x4_rounds_half_to_even() -> None:
    # sigma 1.5, p 2: Hmax = Wmax = 6, Hr = Wr = 4 (up-resize is the identity).
    # (x1, y1) = (1, 0): rows [0, I0..I3, 0], cols [I0..I3, 0, 0]. Down-resize reads padded
    # index round(1.5 x) = 0, 2, 3, 4 (round(4.5) = 4, half to even), so rows 0, I1, I2, I3 and
    # columns I0, I2, I3, 0.
    image = (torch.arange(16, dtype=torch.float64) + 1).view(1, 1, 4, 4) / 16
    out = csrp(image, 1.5, 2, offsets=torch.tensor([[1, 0]]))
    expected = torch.tensor(
        [[0, 0, 0, 0], [5, 7, 8, 0], [9, 11, 12, 0], [13, 15, 16, 0]], dtype=torch.float64
    )
    torch.testing.assert_close(out[0, 0], expected / 16, rtol=0, atol=0)


def test_hand_worked_5x3() -> None:
    # H x W = 5 x 3, sigma 2, p 3: Hmax 10, Hr 7; Wmax 6, Wr 3.
    # Up rows round(5x/7), x < 7: 0 1 1 2 3 4 4; columns identity.
    # (x1, y1) = (2, 1): padded rows [0, 0, I0, I1, I1, I2, I3, I4, I4, 0],
    # padded columns [0, c0, c1, c2, 0, 0]. Down reads padded 2x: rows 0, I0, I1, I3, I4;
    # columns 0, c1, 0.
    image = (torch.arange(15, dtype=torch.float32) + 1).view(1, 1, 5, 3) / 15
    out = csrp(image, 2.0, 3, offsets=torch.tensor([[2, 1]]))
    expected = torch.tensor([[0, 0, 0], [0, 2, 0], [0, 5, 0], [0, 11, 0], [0, 14, 0]]) / 15
    torch.testing.assert_close(out[0, 0], expected.float(), rtol=0, atol=0)


def test_p0_sigma_small_is_identity_on_4x4() -> None:
    # sigma 1.16 on 4 px: Hmax = 4 = H, p = 0, so both resizes are the identity.
    image = _distinct_images(3, 2, 4, 4)
    out = csrp(image, 1.16, 0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, image, rtol=0, atol=0)


@pytest.mark.parametrize(("h", "w", "sigma", "p"), [(32, 32, 1.16, 3), (5, 3, 2.0, 3)])
def test_every_pixel_is_zero_or_an_input_pixel(h: int, w: int, sigma: float, p: int) -> None:
    images = _distinct_images(16, 3, h, w)
    out = csrp(images, sigma, p, generator=torch.Generator().manual_seed(1))
    for n in range(images.shape[0]):
        for c in range(images.shape[1]):
            values = out[n, c][out[n, c] != 0]
            assert torch.isin(values, images[n, c]).all()


@pytest.mark.parametrize(("h", "w", "sigma", "p"), [(32, 32, 1.16, 3), (28, 28, 1.16, 3)])
def test_zero_count_matches_padding_geometry(h: int, w: int, sigma: float, p: int) -> None:
    h_max, w_max, h_r, w_r = csrp_geometry(h, w, sigma, p)

    def zero_lines(length: int, scaled: int, resized: int, before: int) -> int:
        padded = (round(Fraction(i * scaled, length)) for i in range(length))
        return sum(not (before <= min(m, scaled - 1) < before + resized) for m in padded)

    offsets = _all_offsets(p)
    images = _distinct_images(len(offsets), 3, h, w)
    out = csrp(images, sigma, p, offsets=offsets)
    for n, (x1, y1) in enumerate(offsets.tolist()):
        zr = zero_lines(h, h_max, h_r, x1)
        zc = zero_lines(w, w_max, w_r, y1)
        expected = 3 * (zr * w + zc * h - zr * zc)
        assert int((out[n] == 0).sum()) == expected


def test_tables_match_module_level_geometry() -> None:
    assert csrp_geometry(32, 32, *PAPER_SETTINGS["cifar10"]) == (37, 37, 34, 34)
    assert csrp_geometry(32, 32, *PAPER_SETTINGS["cifar100"]) == (39, 39, 34, 34)
    assert csrp_geometry(64, 64, *PAPER_SETTINGS["tinyimagenet"]) == (80, 80, 66, 66)


def test_flat_and_separable_eager_paths_agree() -> None:
    images = _distinct_images(16, 3, 32, 32)
    offsets = draw_offsets(16, 3, torch.Generator().manual_seed(3))
    tables = _tables(32, 32, 1.16, 3, images.device)
    assert tables.flat is not None
    separable = _gather_separable(images, offsets, tables.rows, tables.cols)
    torch.testing.assert_close(csrp(images, 1.16, 3, offsets, backend="eager"), separable)


def test_same_seed_same_output_different_seed_differs() -> None:
    images = torch.rand(32, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    a = csrp(images, 1.16, 3, generator=torch.Generator().manual_seed(42))
    b = csrp(images, 1.16, 3, generator=torch.Generator().manual_seed(42))
    c = csrp(images, 1.16, 3, generator=torch.Generator().manual_seed(43))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


def test_offsets_are_per_sample() -> None:
    offsets = draw_offsets(64, 3, torch.Generator().manual_seed(0))
    assert offsets.dtype == torch.int64 and offsets.shape == (64, 2)
    assert offsets.min() >= 0 and offsets.max() <= 3
    assert len({tuple(o) for o in offsets.tolist()}) > 1
    same = torch.rand(1, 3, 16, 16).expand(64, 3, 16, 16).contiguous()
    out = csrp(same, 1.16, 3, offsets=offsets)
    assert len({out[n].numpy().tobytes() for n in range(64)}) > 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_device_preserved(dtype: torch.dtype) -> None:
    images = torch.rand(5, 3, 9, 11, dtype=dtype)
    out = csrp(images, 1.23, 2, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == dtype and out.device == images.device


def test_non_contiguous_input_and_empty_batch() -> None:
    images = _distinct_images(4, 3, 8, 8).permute(0, 1, 3, 2)  # non-contiguous view
    offsets = torch.tensor([[0, 1], [2, 2], [1, 0], [2, 1]])
    out = csrp(images, 1.5, 2, offsets=offsets)
    expected = csrp(images.contiguous(), 1.5, 2, offsets=offsets)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    empty = torch.rand(0, 3, 8, 8)
    assert csrp(empty, 1.16, 3).shape == (0, 3, 8, 8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    images = torch.rand(64, 3, 32, 32)
    cpu = csrp(images, 1.16, 3, generator=torch.Generator().manual_seed(5))
    cuda = csrp(images.cuda(), 1.16, 3, generator=torch.Generator().manual_seed(5))
    assert cuda.device.type == "cuda"
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=0, atol=0)


def test_gradient_flows_to_kept_pixels_only() -> None:
    images = _distinct_images(6, 2, 10, 10).requires_grad_(True)
    offsets = torch.tensor([[0, 0], [3, 3], [1, 2], [2, 0], [0, 3], [3, 1]])
    out = csrp(images, 1.3, 3, offsets=offsets, backend="compiled")  # grad -> eager gather
    out.sum().backward()
    grad = images.grad
    assert grad is not None
    values = images.detach()
    for n in range(6):
        for c in range(2):
            kept = torch.isin(values[n, c], out[n, c].detach())
            counts = (out[n, c].detach().reshape(-1, 1) == values[n, c].reshape(1, -1)).sum(0)
            assert kept.any() and (~kept).any()
            assert (grad[n, c][kept] > 0).all()
            assert (grad[n, c][~kept] == 0).all()
            torch.testing.assert_close(grad[n, c].reshape(-1), counts.to(grad.dtype))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sigma": 1.0}, r"sigma must be a number in \(1, 4\]"),
        ({"sigma": 0.5}, r"sigma must be a number in \(1, 4\]"),
        ({"sigma": float("nan")}, r"sigma must be a number in \(1, 4\]"),
        ({"sigma": "1.2"}, r"sigma must be a real number > 1"),
        ({"p": -1}, r"p must be an integer in 0\.\.1024"),
        ({"p": 1.5}, r"p must be an integer >= 0"),
        ({"p": 4}, r"p=4 makes the image vanish .* p must be in 0\.\.3"),
        ({"images": torch.zeros(2, 3, 4, 4, dtype=torch.uint8)}, r"images must be a floating"),
        ({"images": torch.zeros(3, 4, 4)}, r"images must have rank 4 \[N, C, H, W\]"),
        ({"images": np.zeros((2, 3, 4, 4))}, r"images must be a torch.Tensor"),
        ({"offsets": torch.zeros(3, 2, dtype=torch.int64)}, r"offsets must have shape \[N, 2\]"),
        ({"offsets": torch.zeros(2, 3, dtype=torch.int64)}, r"offsets must have shape \[N, 2\]"),
        ({"offsets": torch.zeros(2, 2)}, r"offsets must be an integer tensor \[N, 2\]"),
        ({"offsets": torch.tensor([[0, 3], [1, 1]])}, r"offsets must lie in 0\.\.p = 0\.\.2"),
        ({"offsets": torch.tensor([[0, -1], [1, 1]])}, r"offsets must lie in 0\.\.p = 0\.\.2"),
        ({"generator": "seed"}, r"generator must be a CPU torch.Generator"),
        ({"backend": "fast"}, r"backend must be one of auto, eager, compiled"),
    ],
)
def test_value_errors(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"images": torch.rand(2, 3, 4, 4), "sigma": 1.16, "p": 2}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        csrp(**args)  # type: ignore[arg-type]


def test_module_replays_from_params_and_seed() -> None:
    t = CSRP(1.16, 3)
    images = torch.rand(8, 3, 12, 12)
    params = t.generate_params(images.shape, torch.Generator().manual_seed(9))
    assert set(params) == {"offsets"}
    replay = t.apply_params(images, params)
    fresh = t(images, torch.Generator().manual_seed(9))
    torch.testing.assert_close(replay, fresh, rtol=0, atol=0)
    torch.testing.assert_close(replay, csrp(images, 1.16, 3, params["offsets"]), rtol=0, atol=0)
    assert t.spec() == {"name": "csrp", "sigma": 1.16, "p": 3}
    with pytest.raises(ValueError, match=r"params must be a dict with key 'offsets'"):
        t.apply_params(images, {"xsteps": torch.zeros(8, 2)})


def test_module_nests_and_keeps_nn_module_apply() -> None:
    model = nn.Sequential(CSRP(1.16, 3), nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    seen: list[str] = []
    model.apply(lambda m: seen.append(type(m).__name__))
    assert "CSRP" in seen and "Linear" in seen
    assert model(torch.rand(4, 3, 8, 8)).shape == (4, 2)


def test_compile_failure_falls_back_to_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    csrp_module = importlib.import_module(
        "models.transforms.csrp"
    )  # the package's csrp is the function

    def broken(*args: object) -> torch.Tensor:
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(csrp_module, "_compiled_kernel", broken)
    monkeypatch.setattr(csrp_module, "_compile_failed", False)
    images = _distinct_images(4, 3, 8, 8)
    offsets = draw_offsets(4, 3, torch.Generator().manual_seed(0))
    with pytest.warns(RuntimeWarning, match="torch.compile path unavailable"):
        out = csrp(images, 1.16, 3, offsets, backend="compiled")
    torch.testing.assert_close(out, csrp(images, 1.16, 3, offsets, backend="eager"))
    assert not compile_enabled()


def test_env_var_disables_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    csrp_module = importlib.import_module(
        "models.transforms.csrp"
    )  # the package's csrp is the function
    monkeypatch.setattr(csrp_module, "_compile_failed", False)
    for value, enabled in [("0", False), ("off", False), ("false", False), ("1", True)]:
        monkeypatch.setenv("CSRP_COMPILE", value)
        assert compile_enabled() is enabled


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("CSRP_TEST_COMPILE") != "1",
    reason="compiles a kernel (~10 s); CSRP_TEST_COMPILE=1",
)
def test_compiled_kernel_matches_eager() -> None:
    images = torch.rand(96, 3, 32, 32)
    offsets = draw_offsets(96, 3, torch.Generator().manual_seed(0))
    with torch.inference_mode():
        compiled = csrp(images, 1.16, 3, offsets, backend="compiled")
    torch.testing.assert_close(compiled, csrp(images, 1.16, 3, offsets, backend="eager"))


# ------------------------------------------------------------------------------------------
# build_transform / describe
# ------------------------------------------------------------------------------------------


def test_build_transform_specs_round_trip() -> None:
    assert build_transform(None) is None
    assert describe(None) is None
    c = build_transform({"name": "csrp", "sigma": 1.16, "p": 3})
    assert isinstance(c, CSRP) and (c.sigma, c.p) == (1.16, 3)
    r = build_transform({"name": "rdg", "distort_limit": 0.25, "num_cells": 10})
    assert isinstance(r, RDG) and (r.distort_limit, r.num_cells) == (0.25, 10)
    assert isinstance(build_transform({"name": "rdg"}), RDG)
    for spec in (
        {"name": "csrp", "sigma": 1.23, "p": 5},
        {"name": "rdg", "distort_limit": 0.1, "num_cells": 4},
    ):
        assert describe(build_transform(spec)) == spec


def test_build_transform_forward_draws_fresh_params() -> None:
    images = torch.rand(4, 3, 16, 16)
    for spec in ({"name": "csrp", "sigma": 1.16, "p": 3}, {"name": "rdg"}):
        t = build_transform(spec)
        assert t is not None
        a = t(images, generator=torch.Generator().manual_seed(1))
        b = t(images, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert a.shape == images.shape


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("csrp", r"preprocessing spec must be null or an object with a 'name'"),
        ({"sigma": 1.16, "p": 3}, r"name must be one of bitdepth, csrp, .*; got None"),
        ({"name": "blur"}, r"preprocessing name must be one of bitdepth, csrp, .*; got 'blur'"),
        ({"name": "csrp", "sigma": 1.16}, r"preprocessing 'csrp' needs key\(s\) p"),
        ({"name": "csrp", "sigma": 1.16, "p": 3, "pad": 1}, r"unknown key\(s\) 'pad'"),
        ({"name": "csrp", "sigma": 0.9, "p": 3}, r"sigma must be a number in \(1, 4\]"),
        ({"name": "csrp", "sigma": 1.16, "p": 3.0}, r"p must be an integer >= 0"),
        ({"name": "rdg", "distort_limit": 1.0}, r"distort_limit must be a number in \[0, 1\)"),
        ({"name": "rdg", "num_cells": 0}, r"num_cells must be an integer in 1\.\.1024"),
    ],
)
def test_build_transform_rejects_bad_specs(spec: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_transform(spec)  # type: ignore[arg-type]
