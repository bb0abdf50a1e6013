"""models.csrp_tables: the NumPy tables and offset stream agree exactly with the torch CSRP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.csrp_tables import TorchCompatibleOffsets, csrp_geometry, csrp_spec, csrp_tables
from models.transforms.csrp import csrp, draw_offsets

# every input size the CSRP tests use, the paper's three, and odd non-square ones
SIZES = [((1, 28, 28), 1.23, 6), ((3, 32, 32), 1.16, 3), ((3, 32, 32), 1.23, 5),
         ((3, 64, 64), 1.25, 14), ((3, 25, 31), 1.16, 2), ((1, 7, 5), 1.5, 1),
         ((2, 9, 13), 1.35, 0), ((1, 28, 28), 1.1, 1)]


@pytest.mark.parametrize("seed", [0, 1, 1234, 2**32 + 7, 2**62 + 3])
def test_offsets_draw_what_torch_draws(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    stream = TorchCompatibleOffsets(seed)
    for n, p in [(1, 6), (40, 6), (3, 0), (64, 14), (17, 3), (0, 5), (256, 8)]:
        expected = draw_offsets(n, p, generator).numpy()
        np.testing.assert_array_equal(stream.draw(n, p), expected)


def test_unseeded_streams_differ() -> None:
    a, b = TorchCompatibleOffsets(None).draw(64, 6), TorchCompatibleOffsets(None).draw(64, 6)
    assert a.shape == (64, 2) and a.dtype == np.int64 and (a != b).any()


@pytest.mark.parametrize(("shape", "sigma", "p"), SIZES)
def test_numpy_apply_is_bit_identical_to_torch(shape, sigma: float, p: int) -> None:
    rng = np.random.default_rng(0)
    images = rng.random((12, *shape), dtype=np.float32)
    offsets = rng.integers(0, p + 1, (12, 2))
    _, height, width = shape
    got = csrp_tables(height, width, sigma, p).apply(images, offsets)
    want = csrp(torch.from_numpy(images), sigma, p, offsets=torch.from_numpy(offsets),
                backend="eager").numpy()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_geometry_and_spec_errors() -> None:
    assert csrp_geometry(28, 28, 1.23, 6) == (34, 34, 28, 28)
    assert csrp_spec({"name": "csrp", "sigma": 1.23, "p": 6}, (1, 28, 28)) == (1.23, 6)
    for spec, words in [({"name": "csrp", "sigma": 1.23}, "required"),
                        ({"name": "csrp", "sigma": 1.23, "p": 6, "q": 1}, "unknown"),
                        ({"name": "csrp", "sigma": 0.9, "p": 6}, "sigma"),
                        ({"name": "csrp", "sigma": 1.23, "p": 40}, "vanish"),
                        ({"name": "csrp", "sigma": 1.23, "p": 1.5}, "integer")]:
        with pytest.raises(ValueError, match=words):
            csrp_spec(spec, (1, 28, 28))
    with pytest.raises(ValueError, match="seed"):
        TorchCompatibleOffsets(-1)
