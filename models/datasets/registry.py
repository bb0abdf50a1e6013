"""Dataset registry: ``load_dataset(name, split, root=None)``, ``dataset_info``, ``list_datasets``.

Each dataset module registers a loader ``(split, root) -> ImageData`` and its ``DatasetInfo``.
Adding a dataset is adding one file in this package.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from models.datasets.base import DatasetInfo, ImageData
from models.errors import UserError

Loader = Callable[[str, Path | None], ImageData]
_LOADERS: dict[str, tuple[DatasetInfo, Loader]] = {}
SPLITS = ("train", "test")


def register_dataset(info: DatasetInfo) -> Callable[[Loader], Loader]:
    def decorator(loader: Loader) -> Loader:
        _LOADERS[info.name] = (info, loader)
        return loader

    return decorator


def list_datasets() -> list[str]:
    return sorted(_LOADERS)


def dataset_info(name: str) -> DatasetInfo:
    if name not in _LOADERS:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(list_datasets())}")
    return _LOADERS[name][0]


def load_dataset(name: str, split: str = "train", root: str | Path | None = None) -> ImageData:
    """Load ``split`` ("train" or "test") of dataset ``name`` into memory.

    ``root`` is a user folder; when omitted each loader looks in its documented default places
    (and the ``CSRP_DATA_DIR`` environment variable). Missing data raises one ``UserError`` that
    names the dataset, where it looked and how to provide it.
    """
    dataset_info(name)  # raises a UserError naming the choices
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    loader = _LOADERS[name][1]
    return loader(split, Path(root).expanduser() if root is not None else None)
