"""Offline-first datasets held in memory as tensors.

``load_dataset(name, split, root=None) -> ImageData``; ``dataset_info(name)``; ``list_datasets()``.
Importing this package registers every dataset module beside it.
"""

from models.datasets import cifar, fashion_mnist, tinyimagenet  # noqa: F401  (registration)
from models.datasets.base import DatasetInfo, ImageData
from models.datasets.registry import (
    DATASETS,
    dataset_info,
    list_datasets,
    load_dataset,
    register_dataset,
)

__all__ = [
    "DATASETS","DatasetInfo", "ImageData", "dataset_info", "list_datasets", "load_dataset",
           "register_dataset"]
