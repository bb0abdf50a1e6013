"""Training is real and replayable: the tiny target learns, and the same seed gives the same
weights."""

from __future__ import annotations

import json

import pytest
import torch

from models.repository import load_model
from models.training import TrainSettings, random_crop_flip
from tests.conftest import train_tiny_entry


def test_tiny_target_learns(tiny_repo):
    config = json.loads((tiny_repo / "target" / "config.json").read_text())
    assert config["metrics"]["test_top1"] > 0.6
    assert config["lineage"]["seed"] == 0
    assert config["lineage"]["code_version"]


def test_same_seed_same_weights(tmp_path, fmnist_train, fmnist_test):
    small = fmnist_train.take(600)
    a = train_tiny_entry(tmp_path / "a", small, fmnist_test.take(100), seed=7, epochs=1)
    b = train_tiny_entry(tmp_path / "b", small, fmnist_test.take(100), seed=7, epochs=1)
    c = train_tiny_entry(tmp_path / "c", small, fmnist_test.take(100), seed=8, epochs=1)
    wa, wb, wc = (load_model(p)[0].state_dict() for p in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_random_crop_flip_keeps_pixels():
    images = torch.rand(8, 1, 28, 28)
    out = random_crop_flip(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    values = set(images.flatten().tolist()) | {0.0}
    assert set(out.flatten().tolist()) <= values


def test_train_settings_reject_bad_values():
    with pytest.raises(ValueError, match="epochs"):
        TrainSettings(epochs=0)
    with pytest.raises(ValueError, match="lr"):
        TrainSettings(lr=0.0)
