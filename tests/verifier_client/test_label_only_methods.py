"""The label-only methods built for extraction (AKH, SAC-m, Dataset Inference's Blind Walk) and
their representations: each separates an unmodified copy from an independent model, in-process
and over HTTP against the real label-only server, and bad parameters are one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from models.errors import UserError
from models.local_server import LocalServer
from models.repository import load_model
from verifier_client.calibration import local_rates, remote_rates
from verifier_client.cli import main
from verifier_client.fingerprint_set import FingerprintSet, target_metadata
from verifier_client.fingerprints import SeedPool, create_method
from verifier_client.representations import walk_distances, walk_queries


def _generate(method: str, repo: Path, n: int, seeds: Any, **extra: Any) -> FingerprintSet:
    model, config = load_model(repo / "target")
    params = extra.pop("params", {})
    return create_method(method, **params).generate(
        model, n, generator=torch.Generator().manual_seed(3), seeds=seeds,
        target=target_metadata(repo / "target", config), input_shape=config.input_shape,
        **extra)


@pytest.fixture(scope="module")
def sets(tiny_repo: Path, fmnist_test: Any, tmp_path_factory: pytest.TempPathFactory
         ) -> dict[str, FingerprintSet]:
    folder = tmp_path_factory.mktemp("label-only")
    out = {"akh": _generate("akh", tiny_repo, 40, fmnist_test),
           "sac-m": _generate("sac-m", tiny_repo, 30, fmnist_test)}
    for name, fset in out.items():
        fset.save(folder / f"{name}.safetensors")
    return out


def test_akh_keeps_the_targets_mistakes(sets: dict[str, FingerprintSet], fmnist_test: Any):
    fset = sets["akh"]
    assert fset.representation == "labels" and fset.metadata["representation"] == "labels"
    truth = fmnist_test.labels[fset.sources]
    assert bool((fset.labels != truth).all())  # every sample is one the target gets wrong
    assert len(set(fset.sources.tolist())) == fset.n  # no seed twice


def test_sac_m_compares_label_pairs(sets: dict[str, FingerprintSet]):
    fset = sets["sac-m"]
    assert fset.representation == "label-pairs"
    labels = fset.labels_array[None, :]
    assert fset.score(labels).shape == (1, 30 * 29 // 2) and fset.score(labels).all()
    permuted = (labels + 1) % 10  # the same classes under other names: SAC cannot tell
    assert fset.score(permuted).all()
    one_class = np.zeros_like(labels)
    assert not fset.score(one_class).all()


@pytest.mark.parametrize("method", ["akh", "sac-m"])
def test_a_copy_matches_more_than_an_independent_model(method: str, tiny_repo: Path,
                                                       sets: dict[str, FingerprintSet]):
    copy, independent = (local_rates(tiny_repo / name, [sets[method]])[0]
                         for name in ("target", "indep-1"))
    assert copy == 1.0 and independent < 0.98  # SAC-m: most pairs are agreed on by anyone


def test_over_http_the_rates_are_the_in_process_ones(tiny_repo: Path,
                                                     sets: dict[str, FingerprintSet]):
    import asyncio

    chosen = [sets["akh"], sets["sac-m"]]
    with LocalServer(tiny_repo, "--models", "target,indep-1") as server:
        for name in ("target", "indep-1"):
            remote = asyncio.run(remote_rates(server.url, name, chosen, 1, {}))
            assert remote == pytest.approx(local_rates(tiny_repo / name, chosen))


def test_walk_queries_and_distances_by_hand():
    images = torch.full((2, 1, 2, 2), 128 / 255)
    queries = walk_queries(images, directions=2, steps=3, step=0.1, seed=0)
    assert queries.shape == (2 * (1 + 2 * 3), 1, 2, 2)
    assert isinstance(queries, np.ndarray)  # the torch-free client's queries are NumPy
    assert np.array_equal(queries[0], images[0].numpy())  # the point itself first
    first_step = np.abs(queries[1:7:3] - images[0].numpy())  # step 1 of each direction
    assert float(np.abs(first_step - 0.1).max()) <= 1 / 255  # 0.1, on the 8-bit grid
    fset = FingerprintSet(images, torch.tensor([1, 2]), {
        "method": "di", "representation": "walk",
        "walk": {"directions": 2, "steps": 3, "step": 0.1, "seed": 0,
                 "members": [True, False]}})
    # point 0: right at the start, flips at step 2 and never; point 1: wrong at the start
    answers = np.array([[1, 1, 0, 0, 1, 1, 1, 0, 2, 2, 2, 2, 2, 2]])
    assert walk_distances(fset, answers).tolist() == [[(2 + 4) / 2, 0.0]]
    assert fset.score(answers).tolist() == [[True, True]]  # the private point is farther


def _memorise(out: Path, points: Any, test: Any, seed: int) -> None:
    """tinycnn trained 60 epochs without augmentation on ``points``: it memorises them
    (train accuracy ~0.98 against ~0.73 on test), the generalisation gap DI needs."""
    from models.datasets import dataset_info
    from models.entries import finalize_entry, new_config
    from models.repository import Lineage, build_classifier
    from models.training import TrainSettings, fit, seed_everything

    config = new_config(out.name, "tinycnn", dataset_info("fashion-mnist"),
                        Lineage(modification="train", seed=seed))
    seed_everything(seed)
    model = build_classifier(config).train()
    fit(model, points, TrainSettings(epochs=60, seed=seed, lr=0.05, augment=False),
        show_progress=False)
    finalize_entry(out, model, config, test)


@pytest.fixture(scope="module")
def overfit_repo(fmnist_train: Any, fmnist_test: Any, tmp_path_factory: pytest.TempPathFactory
                 ) -> tuple[Path, Any]:
    """A target that memorised 300 private points, and an innocent that memorised 300
    others: Dataset Inference's setting."""
    repo = tmp_path_factory.mktemp("di")
    private, rest = fmnist_train.split_off(300, 5)
    _memorise(repo / "target", private, fmnist_test, seed=0)
    _memorise(repo / "innocent", rest.split_off(300, 6)[0], fmnist_test, seed=1)
    return repo, private


def test_dataset_inference_finds_the_private_points_in_the_copy(overfit_repo: Any,
                                                               fmnist_test: Any):
    repo, private = overfit_repo
    fset = _generate("di", repo, 60, fmnist_test.take(500), private=SeedPool.from_any(private),
                     params={"directions": 4, "steps": 12, "step": 0.03})
    assert fset.representation == "walk" and fset.query_count == 60 * (1 + 4 * 12)
    assert fset.metadata["walk"]["members"] == [True] * 30 + [False] * 30
    copy, innocent = (local_rates(repo / name, [fset])[0] for name in ("target", "innocent"))
    assert copy > 0.62 and copy > innocent + 0.1
    import asyncio

    with LocalServer(repo, "--models", "target") as server:  # the walk over HTTP
        remote = asyncio.run(remote_rates(server.url, "target", [fset], 1, {}))
    assert remote == pytest.approx([copy])


@pytest.mark.parametrize(("argv", "message"), [
    (["--method", "di", "--param", "steps=0"], "di: need directions >= 1, steps >= 1"),
    (["--method", "sac-m", "--param", "alpha=-1"], "sac-m: alpha must be a finite number > 0"),
    (["--method", "akh", "--eot", "csrp(sigma=1.2, p=3)"], "akh: natural inputs are not"),
    (["--method", "di", "--n", "5"], "di: n must be an even integer"),
])
def test_bad_parameters_are_one_line(argv: list[str], message: str, tiny_repo: Path,
                                     tmp_path: Path, capsys: pytest.CaptureFixture):
    code = main(["generate", "--target", str(tiny_repo / "target"), "--out",
                 str(tmp_path / "x.safetensors"), "--quiet", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err and message in err, err
    assert not (tmp_path / "x.safetensors").exists()


def test_a_walk_set_with_broken_settings_is_refused():
    with pytest.raises(UserError, match="metadata\\['walk'\\] needs members"):
        FingerprintSet(torch.zeros(2, 1, 2, 2), torch.tensor([0, 1]), {
            "method": "di", "representation": "walk",
            "walk": {"directions": 1, "steps": 1, "step": 0.1, "seed": 0,
                     "members": [True, True]}})
    with pytest.raises(UserError, match="unknown representation 'nope'"):
        FingerprintSet(torch.zeros(1, 1, 2, 2), torch.tensor([0]),
                       {"method": "m", "representation": "nope"})
