"""A new defence is one file: a transform registered here (not in ``models/transforms``) works end
to end: the pirate adapts to it, the repository stores it, the server applies it with its seeded
draw order, and the owner's ``match`` command simulates it, all without touching project code."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import torch
from torch import Tensor

from models.adapt import adapt_entry
from models.repository import load_config
from models.runtime import load_predictor
from models.transforms import (
    Option,
    RandomTransform,
    build_transform,
    list_transforms,
    register_transform,
    unregister_transform,
)
from models.transforms.base import check_batch_shape
from tests.server.conftest import start_server
from verifier_client.cli import main as verifier_main
from verifier_client.oip_client import OIPClient

NAME = "shift-test"
SPEC = {"name": NAME, "pixels": 2}


class RandomShift(RandomTransform):
    """Shift each image by a random (dy, dx) in ``-pixels..pixels``, zero fill (test only)."""

    options = (Option("pixels", int, "largest shift, integer >= 0", 1),)

    def __init__(self, pixels: int = 1) -> None:
        super().__init__()
        if isinstance(pixels, bool) or not isinstance(pixels, int) or pixels < 0:
            raise ValueError(f"pixels must be an integer >= 0; got {pixels!r}")
        self.pixels = pixels

    def generate_params(self, batch_shape: Sequence[int],
                        generator: torch.Generator | None = None) -> dict[str, Tensor]:
        n = check_batch_shape(batch_shape)[0]
        return {"shift": torch.randint(-self.pixels, self.pixels + 1, (n, 2),
                                       generator=generator)}

    def apply_params(self, images: Tensor, params: dict[str, Tensor]) -> Tensor:
        n, _, h, w = images.shape
        shift = params["shift"].to(images.device)
        rows = torch.arange(h, device=images.device)[None, :] - shift[:, :1]  # [N, H]
        cols = torch.arange(w, device=images.device)[None, :] - shift[:, 1:]  # [N, W]
        keep = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
        flat = rows.clamp(0, h - 1)[:, :, None] * w + cols.clamp(0, w - 1)[:, None, :]
        out = images.flatten(2).gather(2, flat.flatten(1)[:, None, :].expand(n, images.shape[1],
                                                                             h * w))
        return out.view_as(images) * keep[:, None]


@pytest.fixture(scope="module", autouse=True)
def registered() -> Iterator[None]:
    register_transform(NAME)(RandomShift)
    yield
    unregister_transform(NAME)


@pytest.fixture(scope="module")
def shift_repo(tiny_repo: Path, fmnist_train, fmnist_test,
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("shift-repo")
    shutil.copytree(tiny_repo / "target", repo / "target")
    adapt_entry(repo / "target", repo / "shifted", SPEC, fmnist_train, fmnist_test.take(300),
                epochs=1, fraction=0.1, seed=3, repeats=2, show_progress=False)
    return repo


def test_registered_and_replayable() -> None:
    assert NAME in list_transforms()
    transform = build_transform(SPEC)
    assert isinstance(transform, RandomShift) and transform.spec() == SPEC
    images = torch.rand(5, 1, 8, 8)
    params = transform.generate_params(images.shape, torch.Generator().manual_seed(4))
    replay = transform.apply_params(images, params)
    torch.testing.assert_close(replay, transform(images, torch.Generator().manual_seed(4)))
    with pytest.raises(ValueError, match="pixels must be an integer >= 0"):
        build_transform({"name": NAME, "pixels": -1})


def test_adapt_writes_the_spec_into_the_entry(shift_repo: Path) -> None:
    config = load_config(shift_repo / "shifted")
    assert config.preprocessing == SPEC
    assert config.lineage.modification == f"adapt-{NAME}"
    assert config.lineage.parameters["pixels"] == 2
    assert 0 < config.metrics["transform_top1"] <= 1


def test_server_applies_it_in_the_seeded_draw_order(shift_repo: Path, fmnist_test) -> None:
    images = fmnist_test.floats(slice(0, 200))
    server = start_server(repository=shift_repo, models="shifted", seed=11, max_batch_size=64,
                          max_queue_delay_ms=0)
    try:
        async def ask() -> list[int]:
            async with OIPClient(server.url, batch_size=200) as client:
                return (await client.infer("shifted", images)).tolist()

        labels = asyncio.run(ask())
        with server.client() as http:
            parameters = http.get("/v2/models/shifted").json()["parameters"]
    finally:
        server.stop()
    assert parameters["preprocessing"] == SPEC
    predictor = load_predictor(shift_repo / "shifted")
    expected = predictor.predict(RandomShift(2)(images, torch.Generator().manual_seed(11)))
    assert labels == expected.tolist()
    other_draws = predictor.predict(RandomShift(2)(images, torch.Generator().manual_seed(12)))
    assert labels != other_draws.tolist()  # the draws matter, so the check above can fail


def test_match_simulates_it_from_the_config_and_from_an_inline_spec(
        shift_repo: Path, tmp_path: Path, capsys) -> None:
    from verifier_client.fingerprint_set import FingerprintSet, snap_to_grid

    noise = snap_to_grid(torch.rand(30, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    labels = load_predictor(shift_repo / "target").predict(noise)
    FingerprintSet(noise, labels, {"method": "noise", "parameters": {}, "target": {},
                                   "seed": 0, "code_version": "x", "candidates_tried": 30,
                                   "created": "now"}).save(tmp_path / "noise.safetensors")
    for extra, origin in (([], "config.json"), (["--transform", f"{NAME}(pixels=2)"],
                                               "command line")):
        out = tmp_path / f"mr-{len(extra)}.json"
        code = verifier_main(["match", "--fingerprints", str(tmp_path / "noise.safetensors"),
                              "--model", str(shift_repo / "shifted"), "--repeats", "3",
                              *extra, "--json", str(out)])
        assert code == 0, capsys.readouterr().err
        result = json.loads(out.read_text())
        assert result["transform"] == SPEC and origin in result["transform_origin"]
        assert result["repeats"] == 3 and 0 <= result["mr_mean"] <= 1
