"""Verifier tests drive tiny models on tiny batches: one torch thread, since a second only spins
(and costs CPU on a busy box)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


POPULATION_DATA_FRACTION = 0.04


def _population_plan() -> list:
    from models.zoo import PlanEntry

    def trained(name: str, role: str, seed: int) -> PlanEntry:
        return PlanEntry(name, role, "train", "target" if role == "target" else "independent",
                         arch="tinycnn", seed=seed, params={"epochs": 2})

    csrp = {"name": "csrp", "sigma": 1.16, "p": 3}
    return [trained("target", "target", 0),
            *(trained(f"indep-{i:02d}", "calibration-negative", 10 + i) for i in range(1, 7)),
            *(trained(f"heldout-{i:02d}", "heldout-negative", 20 + i) for i in range(1, 4)),
            PlanEntry("copy", "positive", "copy", "unmodified", parent="target"),
            PlanEntry("prune-0.3", "positive", "prune", "pruning", parent="target",
                      params={"rate": 0.3}),
            PlanEntry("csrp", "positive", "adapt", "csrp-data-free", parent="target", seed=7,
                      params={"transform": csrp, "epochs": 0}),
            PlanEntry("csrp-ft", "positive", "adapt", "csrp-fine-tuned", parent="target",
                      seed=7, params={"transform": csrp, "epochs": 1, "fraction": 0.2})]


@pytest.fixture(scope="session")
def tiny_population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small population zoo (tinycnn on 4% of Fashion-MNIST): a target, 6 calibration and 3
    held-out negatives, 4 positives in 4 categories, population.json, and two real fingerprint
    sets (VCE and IPGuard, 30 samples each, distinct seeds)."""
    from models.datasets import load_dataset
    from models.repository import load_model
    from models.zoo import DataSpec, build_zoo
    from verifier_client.fingerprint_set import target_metadata
    from verifier_client.fingerprints import create_method

    zoo = tmp_path_factory.mktemp("population") / "zoo"
    build_zoo(zoo, plan=_population_plan(),
              data=DataSpec(train_fraction=POPULATION_DATA_FRACTION, test_samples=300))
    model, config = load_model(zoo / "target")
    seeds = load_dataset("fashion-mnist", "test").take(200)
    target = target_metadata(zoo / "target", config)
    for method, seed, params in (("vce", 3, {"steps": 30}), ("ipguard", 1, {"steps": 60})):
        generator = torch.Generator().manual_seed(seed)
        fset = create_method(method, **params).generate(
            model, 30, generator=generator, seeds=seeds if method == "ipguard" else None,
            target=target)
        fset.save(zoo / "fingerprints" / f"{method}.safetensors")
    return zoo


#: The front family of the owner's front-matched calibration (its corners and centre).
FRONT_FAMILY = "csrp(sigma=1.16..1.3, p=3..6)"


@pytest.fixture(scope="module")
def owner(tiny_repo: Path, fmnist_train: Any, fmnist_test: Any,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two 50-sample sets labelled by the target, calibrated on six independents: indep-1 and
    indep-2 of the tiny repository and four more trained here."""
    from models.runtime import load_predictor
    from tests.conftest import train_tiny_entry
    from tests.verifier_client.test_calibration import make_set
    from verifier_client.calibration import IndependentSource, calibrate, write_calibration
    from verifier_client.fingerprint_set import load_sets

    folder = tmp_path_factory.mktemp("owner")
    extra = [train_tiny_entry(folder / "repo" / f"indep-{seed}", fmnist_train, fmnist_test,
                              seed=seed) for seed in range(3, 7)]
    images = fmnist_test.floats(slice(200, 300))
    labels = load_predictor(tiny_repo / "target").predict(images)
    make_set(folder / "sets" / "ipguard.safetensors", images[:50], labels[:50], "ipguard")
    make_set(folder / "sets" / "cae.safetensors", images[50:], labels[50:], "cae")
    sets = load_sets([folder / "sets"])
    sources = [IndependentSource(n, path=tiny_repo / n) for n in ("indep-1", "indep-2")]
    sources += [IndependentSource(path.name, path=path) for path in extra]
    write_calibration(folder / "calibration.json", calibrate(sets, sources))
    # the same negatives queried behind a CSRP family, as adaptive verification needs them
    write_calibration(folder / "calibration-front.json", calibrate(
        sets, sources, front=FRONT_FAMILY, votes=3, repeats=3))
    return {"sets": folder / "sets", "calibration": folder / "calibration.json",
            "front_calibration": folder / "calibration-front.json", "folder": folder}
