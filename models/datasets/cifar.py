"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009): 32x32 RGB, 50k train / 10k test, from a user folder.

Neither is on PyPI or Debian, so both load from a folder the user downloaded and extracted from
https://www.cs.toronto.edu/~kriz/cifar.html, in either official version:

- python version (torchvision's folder format): ``cifar-10-batches-py/`` holding
  ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``; ``cifar-100-python/`` holding ``train``
  and ``test``. Each file is a pickled dict with ``data`` (uint8 [N, 3072]) and ``labels``
  (CIFAR-10) or ``fine_labels`` (CIFAR-100).
- binary version: ``cifar-10-batches-bin/`` holding ``data_batch_1.bin`` .. ``data_batch_5.bin``
  and ``test_batch.bin`` (records of 1 label byte + 3072 pixel bytes); ``cifar-100-binary/``
  holding ``train.bin`` and ``test.bin`` (coarse label byte + fine label byte + 3072 bytes).

A row's 3072 bytes are the 1024 red values, then green, then blue, each plane row-major, so a
reshape to [3, 32, 32] is already the [C, H, W] layout. CIFAR-100 uses the 100 fine labels.

``--data-root`` may name the folder holding ``cifar-10-batches-py`` (or ``-bin``) or that folder
itself; without it, ``$CSRP_DATA_DIR/<name>``, ``./data/<name>`` and the cache are searched.

We do not use ``torchvision.datasets.CIFAR10``/``CIFAR100``: they unpickle the batches with plain
``pickle.load`` (a crafted file runs arbitrary code) and md5-check every file against the
official archive (so small or re-packed folders, like the ones the tests write, are rejected).
Here the python batches go through ``_ArrayUnpickler``, which can build numpy arrays and nothing
else.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.datasets.base import DatasetInfo, ImageData
from models.datasets.locations import candidate_roots, missing
from models.datasets.registry import register_dataset
from models.errors import UserError

URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
PIXELS = 3 * 32 * 32

CIFAR10 = DatasetInfo(
    name="cifar10", num_classes=10, in_channels=3, image_size=32,
    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
    labels=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
            "truck"),
)
CIFAR100 = DatasetInfo(
    name="cifar100", num_classes=100, in_channels=3, image_size=32,
    mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
    labels=(  # the fine labels in index order (alphabetical, as in the archive's ``meta``)
        "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
        "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
        "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
        "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
        "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard",
        "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse",
        "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck",
        "pine_tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray",
        "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail",
        "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
        "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle",
        "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
    ),
)


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol 0-2 pickles use it for bytes; only latin-1 is allowed."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise UserError(f"refusing pickled call _codecs.encode(..., {encoding!r})")
    return text.encode("latin1")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    try:  # numpy >= 2 (importing numpy.core there warns)
        from numpy._core.multiarray import _reconstruct  # type: ignore[attr-defined]
        from numpy._core.numeric import _frombuffer  # type: ignore[attr-defined]
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct  # type: ignore[attr-defined]
        from numpy.core.numeric import _frombuffer  # type: ignore[attr-defined]

    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for module in ("numpy.core", "numpy._core"):  # numpy 1 and numpy 2 spell them differently
        allowed[(f"{module}.multiarray", "_reconstruct")] = _reconstruct
        allowed[(f"{module}.numeric", "_frombuffer")] = _frombuffer
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays, dicts, lists, strings and numbers, nothing else.

    The official "python version" of CIFAR is a set of pickles, and unpickling runs whatever
    callable the file names (``os.system`` included). These files only need numpy's array
    reconstruction (``_reconstruct``/``ndarray``/``dtype``; ``_frombuffer`` for protocol 5 and
    ``_codecs.encode`` for bytes in protocol 0-2 files); dicts, lists, strings and ints are
    pickle opcodes and need no global at all. Any other global is refused before it is imported,
    so a crafted file cannot execute anything.
    """

    def __init__(self, file: io.BufferedIOBase, path: Path) -> None:
        super().__init__(file, encoding="latin1")  # like torchvision: python 2 str -> str
        self._path = path
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UserError(f"{self._path}: refusing to unpickle {module}.{name} (a CIFAR batch "
                            "holds only numpy arrays and lists; this file is not one)") from None


def _unpickle_batch(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            obj = _ArrayUnpickler(handle, path).load()
    except UserError:
        raise
    except Exception as error:  # truncated or garbage file: pickle raises many types
        raise UserError(f"{path}: corrupt CIFAR batch ({type(error).__name__}: {error})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: not a CIFAR batch (holds {type(obj).__name__}, not a dict)")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _check(path: Path, images: np.ndarray, labels: np.ndarray, info: DatasetInfo) -> None:
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != PIXELS:
        raise UserError(f"{path}: not a {info.name} batch (data is {images.dtype} "
                        f"{list(images.shape)}, expected uint8 [N, {PIXELS}])")
    if labels.shape != (images.shape[0],):
        raise UserError(f"{path}: {len(labels)} labels for {images.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() >= info.num_classes):
        raise UserError(f"{path}: labels outside 0..{info.num_classes - 1}")


def _read_python(path: Path, info: DatasetInfo) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle_batch(path)
    key = "labels" if info is CIFAR10 else "fine_labels"
    if "data" not in batch or key not in batch:
        raise UserError(f"{path}: not a {info.name} batch (keys {sorted(batch)}; expected "
                        f"'data' and {key!r})")
    images = batch["data"]
    if not isinstance(images, np.ndarray):
        raise UserError(f"{path}: not a {info.name} batch ('data' is {type(images).__name__})")
    try:
        labels = np.asarray(batch[key], dtype=np.int64)
    except (TypeError, ValueError):
        raise UserError(f"{path}: not a {info.name} batch ({key!r} is not a list of "
                        "ints)") from None
    _check(path, images, labels, info)
    return images, labels


def _read_binary(path: Path, info: DatasetInfo) -> tuple[np.ndarray, np.ndarray]:
    label_bytes = 1 if info is CIFAR10 else 2  # CIFAR-100: coarse byte, then fine byte
    record = label_bytes + PIXELS
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % record:
        raise UserError(f"{path}: not a {info.name} binary batch ({raw.size} bytes is not a "
                        f"whole number of {record}-byte records)")
    rows = raw.reshape(-1, record)
    images, labels = rows[:, label_bytes:], rows[:, label_bytes - 1].astype(np.int64)
    _check(path, images, labels, info)
    return images, labels


# name -> ((python folder, {split: files}), (binary folder, {split: files}))
_LAYOUTS: dict[str, tuple[tuple[str, dict[str, list[str]]], tuple[str, dict[str, list[str]]]]] = {
    "cifar10": (
        ("cifar-10-batches-py",
         {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}),
        ("cifar-10-batches-bin",
         {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}),
    ),
    "cifar100": (
        ("cifar-100-python", {"train": ["train"], "test": ["test"]}),
        ("cifar-100-binary", {"train": ["train.bin"], "test": ["test.bin"]}),
    ),
}


def _locate(info: DatasetInfo, split: str,
            root: Path | None) -> tuple[list[Path], bool, list[Path]]:
    """The split's files, whether they are the python version, and the folders looked in."""
    looked: list[Path] = []
    for base in candidate_roots(root, info.name):
        for (folder, files), is_python in zip(_LAYOUTS[info.name], (True, False), strict=True):
            for where in (base / folder, base):
                looked.append(where)
                every = [name for names in files.values() for name in names]
                if not any((where / name).is_file() for name in every):
                    continue
                wanted = [where / name for name in files[split]]
                absent = [p.name for p in wanted if not p.is_file()]
                if absent:
                    raise UserError(f"dataset {info.name!r}: {where} is incomplete (no "
                                    f"{', '.join(absent)}); re-extract the archive from {URL}")
                return wanted, is_python, looked
    return [], False, list(dict.fromkeys(looked))


def _load(info: DatasetInfo, split: str, root: Path | None) -> ImageData:
    paths, is_python, looked = _locate(info, split, root)
    if not paths:
        python_folder = _LAYOUTS[info.name][0][0]
        raise missing(info.name, looked,
                      f"download the python (or binary) version from {URL}, extract it and pass "
                      f"--data-root FOLDER (the folder holding {python_folder}/, or that folder)")
    reader = _read_python if is_python else _read_binary
    parts = [reader(path, info) for path in paths]
    images = np.concatenate([p[0] for p in parts]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([p[1] for p in parts])
    return ImageData(info, split, torch.from_numpy(np.ascontiguousarray(images)),
                     torch.from_numpy(labels), source=str(paths[0].parent))


@register_dataset(CIFAR10)
def load_cifar10(split: str, root: Path | None) -> ImageData:
    return _load(CIFAR10, split, root)


@register_dataset(CIFAR100)
def load_cifar100(split: str, root: Path | None) -> ImageData:
    return _load(CIFAR100, split, root)
