"""The extraction students' query sets (``models.zoo.queries``), the label-only extraction
client (``models.extraction``) against a real server, and a student built through the
pirate's CSRP server over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.errors import UserError
from models.extraction import served_labels
from models.local_server import LocalServer
from models.repository import load_config
from models.runtime import load_predictor
from models.zoo import DataSpec, PlanEntry, build_zoo
from models.zoo.queries import mixed_pairs, natural_crops
from models.zoo.steps import load_data

TINY_DATA = DataSpec(train_fraction=0.1, test_samples=300)


def test_mixed_pairs_are_seeded_mixtures_on_the_8_bit_grid():
    train = load_data(TINY_DATA).train
    first, again = mixed_pairs(train, 64, 3), mixed_pairs(train, 64, 3)
    assert first.dtype == torch.uint8 and first.shape == (64, 1, 28, 28)
    assert torch.equal(first, again) and not torch.equal(first, mixed_pairs(train, 64, 4))


def test_natural_crops_are_seeded_photographs_of_the_model_size():
    pytest.importorskip("skimage")
    grey = natural_crops(16, [1, 28, 28], seed=5)
    assert grey.shape == (16, 1, 28, 28) and grey.dtype == torch.uint8
    assert torch.equal(grey, natural_crops(16, [1, 28, 28], seed=5))
    assert grey.float().std() > 10  # photographs, not a flat image
    assert natural_crops(4, [3, 32, 32], seed=5).shape == (4, 3, 32, 32)


@pytest.fixture(scope="module")
def pirate_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny target, it behind CSRP, and a student extracted through the CSRP server."""
    zoo = tmp_path_factory.mktemp("students") / "zoo"
    csrp = {"name": "csrp", "sigma": 1.23, "p": 6}
    plan = [PlanEntry("target", "target", "train", "target", arch="tinycnn", seed=3,
                      params={"epochs": 1}),
            PlanEntry("csrp", "positive", "adapt", "csrp-data-free", parent="target", seed=7,
                      params={"transform": csrp, "epochs": 0}),
            PlanEntry("api-student", "positive", "distill", "distillation-api", parent="csrp",
                      arch="tinycnn", seed=11,
                      params={"queries": "api", "budget": 600, "epochs": 1})]
    records = build_zoo(zoo, plan=plan, data=TINY_DATA)
    assert {r["status"] for r in records.values()} == {"built"}, records
    return zoo


def test_a_student_extracted_through_the_csrp_server_records_its_recipe(pirate_zoo: Path):
    config = load_config(pirate_zoo / "api-student")
    lineage = config.lineage
    assert lineage.parent == "csrp" and lineage.modification == "distill"
    assert lineage.parameters["queries"] == "api" and lineage.parameters["budget"] == 600
    assert lineage.parameters["train_samples"] == 600
    assert "served labels of csrp over OIP" in lineage.parameters["labels"]
    assert 0.0 < config.metrics["agreement_with_parent"] <= 1.0


def test_served_labels_match_the_model_and_bad_answers_are_refused(pirate_zoo: Path):
    images = load_data(TINY_DATA).test.images[:50]
    with LocalServer(pirate_zoo, "--models", "target,csrp", "--seed", "0") as server:
        labels = served_labels(server.url, "target", images, num_classes=10, batch=16)
        with pytest.raises(UserError, match=r"model 'nope' not found|HTTP 404"):
            served_labels(server.url, "nope", images, num_classes=10)
        # a client that believes in 3 classes refuses labels it cannot use
        with pytest.raises(UserError, match=r"label outside 0\.\.2"):
            served_labels(server.url, "target", images, num_classes=3)
    expected = load_predictor(pirate_zoo / "target").predict(images.float() / 255)
    assert torch.equal(labels, expected.to(torch.int64))
