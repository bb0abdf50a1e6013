"""How each kind of zoo entry is made: one function per ``PlanEntry.kind``, all writing an
ordinary repository entry with lineage (atomically: a failed step leaves nothing behind)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from models.adapt import adapt_entry
from models.datasets import ImageData, dataset_info, load_dataset
from models.entries import derive_config, finalize_entry, train_to_entry
from models.errors import UserError
from models.extraction import served_labels
from models.local_server import LocalServer
from models.modify import detector_entry, distill_entry, ftal_entry, prune_entry, quantize_entry
from models.repository import load_config, load_model
from models.training import TrainSettings
from models.zoo import queries
from models.zoo.plan import (
    DATASET,
    EPOCHS,
    OWNER_PRIVATE,
    PIRATE_FRACTION,
    PIRATE_TEST_ROWS,
    PlanEntry,
)


@dataclass(frozen=True)
class DataSpec:
    """Which data the zoo is built on: the dataset, and (for tests) a share of its splits."""

    dataset: str = DATASET
    train_fraction: float = 1.0
    test_samples: int | None = None


@dataclass
class ZooData:
    train: ImageData
    test: ImageData


@functools.lru_cache(maxsize=2)
def load_data(spec: DataSpec) -> ZooData:
    """The splits of ``spec``, loaded once per process."""
    train = load_dataset(spec.dataset, "train")
    if spec.train_fraction < 1.0:
        train = train.subset(spec.train_fraction, 0)
    test = load_dataset(spec.dataset, "test")
    if spec.test_samples is not None:
        test = test.take(spec.test_samples)
    return ZooData(train, test)


def _train(entry: PlanEntry, zoo: Path, data: ZooData) -> None:
    """The target's recipe (target and independents differ only in seed and architecture)."""
    assert entry.seed is not None
    import torch

    settings = TrainSettings(epochs=int(entry.params.get("epochs", EPOCHS)), seed=entry.seed)
    # a GPU when one is visible (a Ray task given one, or a local run on a GPU machine)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    train, extra = data.train, {"train_fraction": 1.0}
    if entry.params.get("exclude") == "owner-private":
        train = owner_private_split(data.train)[1]
        extra = {"train_fraction": round(len(train) / len(data.train), 6),
                 "exclude": "owner-private", **OWNER_PRIVATE}
    train_to_entry(zoo / entry.name, entry.arch, dataset_info(data.train.info.name), train,
                   data.test, settings, extra_parameters=extra, device=device)


def owner_private_split(train: ImageData) -> tuple[ImageData, ImageData]:
    """``(private, rest)`` of the training split: the owner's private points (``OWNER_PRIVATE``)
    and everything else."""
    return train.split_off(int(OWNER_PRIVATE["count"]), int(OWNER_PRIVATE["seed"]))


def student_queries(entry: PlanEntry, data: ZooData) -> ImageData:
    """The images a label-only extractor sends (``entry.params``: ``queries``, ``budget``;
    ``models.zoo.queries``)."""
    source, budget = entry.params["queries"], int(entry.params["budget"])
    assert entry.seed is not None
    if source in ("train", "api"):
        return queries.subset(data.train, budget, entry.seed)
    if source == "test":
        return queries.subset(data.test.rows(*PIRATE_TEST_ROWS), budget, entry.seed)
    if source == "augmented":
        return queries.as_queries(data.train, queries.mixed_pairs(data.train, budget,
                                                                  entry.seed),
                                  f"mixup of {queries.AUGMENT_SEED_IMAGES} training images")
    if source == "ood":
        shape = list(data.train.info.input_shape)
        return queries.as_queries(data.train, queries.natural_crops(budget, shape, entry.seed),
                                  "crops of scikit-image's sample photographs")
    raise UserError(f"{entry.name}: unknown query source {source!r}")


def _api_labels(entry: PlanEntry, zoo: Path, images: ImageData) -> torch.Tensor:
    """Labels the parent answers through its own server (``python -m server`` on 127.0.0.1,
    seeded), as any customer of the pirate's API would get them."""
    assert entry.parent is not None
    num_classes = load_config(zoo / entry.parent).num_classes
    with LocalServer(zoo, "--models", entry.parent, "--seed", str(entry.seed), threads=1,
                     quiet=True) as server:
        return served_labels(server.url, entry.parent, images.images, num_classes)


def _copy(entry: PlanEntry, zoo: Path, data: ZooData) -> None:
    """The pirate's untouched copy (lineage ``copy``)."""
    assert entry.parent is not None
    model, parent = load_model(zoo / entry.parent)
    config = derive_config(parent, entry.parent, entry.name, "copy", {}, seed=None)
    finalize_entry(zoo / entry.name, model, config, data.test)


def _int8(entry: PlanEntry, zoo: Path, data: ZooData) -> None:
    assert entry.parent is not None and entry.seed is not None
    quantize_entry(zoo / entry.parent, zoo / entry.name, data.train, data.test, seed=entry.seed)


def _prune(entry: PlanEntry, zoo: Path, data: ZooData) -> None:
    assert entry.parent is not None
    prune_entry(zoo / entry.parent, zoo / entry.name, float(entry.params["rate"]), data.test)


def _ftal(entry: PlanEntry, zoo: Path, data: ZooData) -> None:
    assert entry.parent is not None and entry.seed is not None
    ftal_entry(zoo / entry.parent, zoo / entry.name, data.train, data.test,
               epochs=int(entry.params["epochs"]),
               fraction=float(entry.params.get("fraction", PIRATE_FRACTION)), seed=entry.seed)


def _adapt(entry: PlanEntry, zoo: Path, data: ZooData) -> None:
    """CSRP/RDG pirates: fine-tuned behind the transform, or (``epochs = 0``) data-free."""
    assert entry.parent is not None and entry.seed is not None
    adapt_entry(zoo / entry.parent, zoo / entry.name, dict(entry.params["transform"]),
                data.train, data.test, epochs=int(entry.params["epochs"]),
                fraction=float(entry.params.get("fraction", PIRATE_FRACTION)), seed=entry.seed)


def _distill(entry: PlanEntry, zoo: Path, data: ZooData) -> None:
    """A label-only student of ``entry.params["budget"]`` queries from its query source; with
    ``api`` the labels come from the parent's server over HTTP."""
    assert entry.parent is not None and entry.seed is not None
    sent = student_queries(entry, data) if "queries" in entry.params else data.train
    recipe = {k: entry.params[k] for k in ("queries", "budget") if k in entry.params}
    labels, labels_from = None, "parent-hard-labels"
    if entry.params.get("queries") == "api":
        labels = _api_labels(entry, zoo, sent)
        labels_from = f"served labels of {entry.parent} over OIP (its front included)"
    distill_entry(zoo / entry.parent, zoo / entry.name, sent, data.test, arch=entry.arch,
                  epochs=int(entry.params.get("epochs", EPOCHS)), seed=entry.seed,
                  parameters=recipe, labels=labels, labels_from=labels_from)


def _detector(entry: PlanEntry, zoo: Path, data: ZooData) -> None:
    """The detecting pirate: the parent's weights behind a query detector fitted on its clean
    share (``models.modify.detect``), behind ``params["transform"]`` when given."""
    assert entry.parent is not None and entry.seed is not None
    transform = entry.params.get("transform")
    detector_entry(zoo / entry.parent, zoo / entry.name, data.train, data.test,
                   fpr=float(entry.params["fpr"]),
                   fraction=float(entry.params.get("fraction", PIRATE_FRACTION)),
                   transform=dict(transform) if transform else None, seed=entry.seed)


STEPS: dict[str, Callable[[PlanEntry, Path, ZooData], None]] = {
    "train": _train, "copy": _copy, "int8": _int8, "prune": _prune, "ftal": _ftal,
    "adapt": _adapt, "distill": _distill, "detector": _detector}
