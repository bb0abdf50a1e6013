"""Shared fixtures: small real data and tiny models trained in seconds.

Everything here is session-scoped and built once per test run in a temporary folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.datasets import ImageData, dataset_info, load_dataset
from models.entries import finalize_entry, new_config
from models.repository import Lineage, build_classifier
from models.training import TrainSettings, fit, seed_everything

TRAIN_FRACTION = 0.08  # 4,800 Fashion-MNIST images: tinycnn reaches ~75% in a few seconds


@pytest.fixture(scope="session", autouse=True)
def _two_threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def fmnist_train() -> ImageData:
    return load_dataset("fashion-mnist", "train").subset(TRAIN_FRACTION, seed=0)


@pytest.fixture(scope="session")
def fmnist_test() -> ImageData:
    return load_dataset("fashion-mnist", "test").take(1000)


def train_tiny_entry(out: Path, train: ImageData, test: ImageData, seed: int,
                     arch: str = "tinycnn", epochs: int = 2,
                     preprocessing: dict | None = None) -> Path:
    """Train ``arch`` on ``train`` and write a full repository entry (weights + ONNX)."""
    info = dataset_info("fashion-mnist")
    config = new_config(out.name, arch, info, Lineage(modification="train", seed=seed,
                                                      parameters={"epochs": epochs}),
                        preprocessing=preprocessing)
    seed_everything(seed)
    model = build_classifier(config).train()
    fit(model, train, TrainSettings(epochs=epochs, seed=seed, lr=0.05), show_progress=False)
    finalize_entry(out, model, config, test)
    return out


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory, fmnist_train: ImageData,
              fmnist_test: ImageData) -> Path:
    """A model repository with ``target`` and two independents ``indep-1``, ``indep-2``
    (tinycnn on 8% of Fashion-MNIST, different seeds)."""
    repo = tmp_path_factory.mktemp("repo")
    train_tiny_entry(repo / "target", fmnist_train, fmnist_test, seed=0)
    train_tiny_entry(repo / "indep-1", fmnist_train, fmnist_test, seed=1)
    train_tiny_entry(repo / "indep-2", fmnist_train, fmnist_test, seed=2)
    return repo
