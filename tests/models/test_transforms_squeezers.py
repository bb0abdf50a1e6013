"""JPEG, median smoothing, bit-depth reduction and Gaussian noise: each against an independent
reference, replayable from its params or seed, with its options checked and its strength knob
monotone in accuracy-relevant distortion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from models.transforms import build_transform, transform_class
from models.transforms.base import RandomTransform

NEW = ("jpeg", "median", "bitdepth", "noise")


def images(n: int = 6, c: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_median_equals_scipy_mirror_median_filter() -> None:
    x = images(3, 2)
    for k in (3, 5):
        got = build_transform({"name": "median", "kernel_size": k})(x)
        want = ndimage.median_filter(x.numpy(), size=(1, 1, k, k), mode="mirror")
        np.testing.assert_allclose(got.numpy(), want, atol=0)


def test_median_of_one_is_identity_and_smoothing_removes_salt() -> None:
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0  # a lone bright pixel
    assert torch.equal(build_transform({"name": "median", "kernel_size": 1})(x), x)
    assert build_transform({"name": "median"})(x).abs().sum() == 0


def test_bitdepth_quantises_to_the_stated_levels() -> None:
    x = images()
    for bits in (1, 3, 8):
        y = build_transform({"name": "bitdepth", "bits": bits})(x)
        levels = 2 ** bits - 1
        assert torch.allclose(y * levels, (y * levels).round(), atol=1e-5)
        assert (y - x).abs().max() <= 0.5 / levels + 1e-6
    assert len(build_transform({"name": "bitdepth", "bits": 1})(x).unique()) <= 2


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_jpeg_matches_torchvisions_codec_at_the_drawn_quality() -> None:
    """Pillow's libjpeg (used) and torchvision's (an independent build) agree to about a grey
    level at the same quality, and lower quality loses more."""
    from torchvision.io import decode_jpeg, encode_jpeg

    x = images(4)
    t = build_transform({"name": "jpeg", "quality_min": 30, "quality_max": 80})
    params = t.generate_params(x.shape, torch.Generator().manual_seed(1))
    got = t(x, params=params)
    for i in range(4):
        pixels = (x[i] * 255).round().to(torch.uint8)
        ref = decode_jpeg(encode_jpeg(pixels, quality=int(params["quality"][i]))).float() / 255
        assert float((got[i] - ref).abs().mean()) < 2 / 255
    assert set(params["quality"].tolist()) <= set(range(30, 81))
    errors = [float((build_transform({"name": "jpeg", "quality_min": q, "quality_max": q})(
        x, generator=torch.Generator()) - x).abs().mean()) for q in (95, 50, 10)]
    assert errors == sorted(errors)


def test_jpeg_keeps_rgb_and_refuses_other_channel_counts() -> None:
    t = build_transform({"name": "jpeg"})
    assert t(images(2, 3), generator=torch.Generator().manual_seed(0)).shape == (2, 3, 28, 28)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        t.check_fits([2, 28, 28])


def test_noise_is_clipped_gaussian_with_the_stated_std() -> None:
    x = torch.full((200, 1, 28, 28), 0.5)
    y = build_transform({"name": "noise", "std": 0.1})(x, generator=torch.Generator()
                                                         .manual_seed(3))
    assert 0.095 < float((y - x).std()) < 0.105
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    assert torch.equal(build_transform({"name": "noise", "std": 0.0})(x), x)


@pytest.mark.parametrize("name", NEW)
def test_every_new_transform_replays_from_seed_and_params(name: str) -> None:
    t = build_transform({"name": name})
    x = images()
    a = t(x, generator=torch.Generator().manual_seed(5))
    b = t(x, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    params = t.generate_params(x.shape, torch.Generator().manual_seed(5))
    assert torch.equal(t(x, params=params), a)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert isinstance(t, RandomTransform) and t.spec()["name"] == name
    assert build_transform(t.spec()).spec() == t.spec()


@pytest.mark.parametrize("name", NEW)
def test_randomized_flag_says_whether_two_draws_can_differ(name: str) -> None:
    t = build_transform({"name": name})
    x = images()
    a = t(x, generator=torch.Generator().manual_seed(1))
    b = t(x, generator=torch.Generator().manual_seed(2))
    assert (not torch.equal(a, b)) == t.randomized


@pytest.mark.parametrize("name", (*NEW, "rdg"))
def test_strength_knob_distorts_more_as_it_rises(name: str) -> None:
    """The search for equal accuracy relies on distortion growing with strength."""
    cls = transform_class(name)
    x = images(8)
    distortion = []
    for s in (0.0, 0.3, 0.6, 0.9):
        spec = cls.strength_spec(s)
        assert spec is not None and spec["name"] == name
        t = build_transform(spec)
        distortion.append(float((t(x, generator=torch.Generator().manual_seed(0)) - x)
                                .abs().mean()))
    assert distortion == sorted(distortion) and distortion[-1] > distortion[0]


def test_csrp_has_no_strength_knob() -> None:
    assert transform_class("csrp").strength_spec(0.5) is None


@pytest.mark.parametrize("spec, message", [
    ({"name": "jpeg", "quality_min": 0}, "quality_min"),
    ({"name": "jpeg", "quality_min": 80, "quality_max": 70}, "quality_max"),
    ({"name": "jpeg", "quality_min": 50.0}, "quality_min"),
    ({"name": "median", "kernel_size": 4}, "odd"),
    ({"name": "median", "kernel_size": 99}, "odd"),
    ({"name": "bitdepth", "bits": 0}, "bits"),
    ({"name": "bitdepth", "bits": True}, "bits"),
    ({"name": "noise", "std": -0.1}, "std"),
    ({"name": "noise", "std": float("nan")}, "std"),
])
def test_bad_options_are_one_clear_error(spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_transform(spec)


def test_bad_params_are_refused() -> None:
    x = images(2)
    with pytest.raises(ValueError, match="quality"):
        build_transform({"name": "jpeg"})(x, params={"quality": torch.tensor([5, 60])})
    with pytest.raises(ValueError, match="z"):
        build_transform({"name": "noise"})(x, params={"z": torch.zeros(1, 1, 28, 28)})
    with pytest.raises(ValueError, match="takes no params"):
        build_transform({"name": "median"})(x, params={"x": torch.zeros(1)})
