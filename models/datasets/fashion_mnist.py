"""Fashion-MNIST (Xiao, Rasul, Vollgraf 2017): 28x28 grey, 10 classes, 60k/10k. The default.

Looked for, in order: a user folder (``--data-root``); else ``$CSRP_DATA_DIR`` (the folder
holding the four files, or its ``fashion-mnist`` sub-folder) and nowhere else when that is
set; else ``./data/fashion-mnist``, Debian's ``dataset-fashion-mnist`` package
(``/usr/share/datasets/fashion-mnist``), and finally torchvision's download where a network
exists. A folder may hold the four ``*-idx?-ubyte(.gz)`` files directly or torchvision's
``FashionMNIST/raw`` tree. Files are parsed by torchvision's own IDX reader. Every loaded split
records where it came from (``ImageData.source``).
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torchvision.datasets import FashionMNIST
from torchvision.datasets.mnist import read_image_file, read_label_file

from models.datasets.base import DatasetInfo, ImageData
from models.datasets.locations import cache_dir, candidate_roots, missing, user_data_dir
from models.datasets.registry import register_dataset

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
INFO = DatasetInfo(
    name="fashion-mnist", num_classes=10, in_channels=1, image_size=28,
    mean=(0.2860,), std=(0.3530,),
    labels=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
            "Bag", "Ankle boot"),
)
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _find(folder: Path, stem: str) -> Path | None:
    for base in (folder, folder / "FashionMNIST" / "raw", folder / "raw"):
        for name in (stem, stem + ".gz"):
            if (base / name).is_file():
                return base / name
    return None


def _read_idx(path: Path, reader: type | object) -> torch.Tensor:
    """Parse with torchvision's reader; gzip files are inflated to a temp file first."""
    if path.suffix != ".gz":
        return reader(str(path))  # type: ignore[operator]
    with tempfile.NamedTemporaryFile(suffix=".idx", delete=False) as tmp, \
            gzip.open(path, "rb") as src:
        shutil.copyfileobj(src, tmp)
    try:
        return reader(tmp.name)  # type: ignore[operator]
    finally:
        os.unlink(tmp.name)


@register_dataset(INFO)
def load_fashion_mnist(split: str, root: Path | None) -> ImageData:
    roots = candidate_roots(root, "fashion-mnist")
    explicit = root is not None or user_data_dir() is not None
    if not explicit:
        roots.append(DEBIAN_DIR)
    image_stem, label_stem = _FILES[split]
    for folder in roots:
        images_path, labels_path = _find(folder, image_stem), _find(folder, label_stem)
        if images_path and labels_path:
            images = _read_idx(images_path, read_image_file).unsqueeze(1).contiguous()
            labels = _read_idx(labels_path, read_label_file)
            return ImageData(INFO, split, images, labels, source=str(folder))
    if not explicit:
        try:  # a network may exist elsewhere; none does on the build machine
            download = cache_dir() / "fashion-mnist"
            ds = FashionMNIST(str(download), train=split == "train", download=True)
            return ImageData(INFO, split, ds.data.unsqueeze(1).contiguous(), ds.targets,
                             source=str(download))
        except Exception as error:
            roots.append(Path(f"<torchvision download failed: {type(error).__name__}>"))
    raise missing("fashion-mnist", roots,
                  "install Debian's dataset-fashion-mnist package (apt-get install "
                  "dataset-fashion-mnist), or put the four *-ubyte(.gz) files in a folder and "
                  "set CSRP_DATA_DIR=FOLDER (or pass --data-root FOLDER)")
