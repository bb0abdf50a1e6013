"""Dataset registry: ``load_dataset(name, split, root=None)``, ``dataset_info``, ``list_datasets``.

Each dataset module registers a loader ``(split, root) -> ImageData`` and its ``DatasetInfo``.
Adding a dataset is adding one file in this package.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from models.datasets.base import DatasetInfo, ImageData
from models.errors import UserError
from models.registry import Registry

Loader = Callable[[str, Path | None], ImageData]
DATASETS: Registry[tuple[DatasetInfo, Loader]] = Registry("dataset")
SPLITS = ("train", "test")


def register_dataset(info: DatasetInfo) -> Callable[[Loader], Loader]:
    def decorator(loader: Loader) -> Loader:
        DATASETS.register(info.name)((info, loader))
        return loader

    return decorator


def list_datasets() -> list[str]:
    return DATASETS.names()


def dataset_info(name: str) -> DatasetInfo:
    return DATASETS.lookup(name)[0]


def load_dataset(name: str, split: str = "train", root: str | Path | None = None) -> ImageData:
    """Load ``split`` ("train" or "test") of dataset ``name`` into memory.

    ``root`` is a user folder; when omitted each loader looks in its documented default places
    (and the ``CSRP_DATA_DIR`` environment variable). Missing data raises one ``UserError`` that
    names the dataset, where it looked and how to provide it.
    """
    loader = DATASETS.lookup(name)[1]  # a UserError naming the choices
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return loader(split, Path(root).expanduser() if root is not None else None)
