"""Dataset loaders on small files written here in each official format, plus Debian's
Fashion-MNIST when it is installed."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.datasets import dataset_info, list_datasets, load_dataset
from models.datasets.fashion_mnist import DEBIAN_DIR
from models.datasets.tinyimagenet import OFFICIAL_WNIDS
from models.errors import UserError

PER_BATCH = 4  # CIFAR-10 images per python/binary batch file


@pytest.fixture(autouse=True)
def _no_default_places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default search places point into an empty folder, so no real data is picked up."""
    empty = tmp_path / "nowhere"
    monkeypatch.setenv("CSRP_DATA_DIR", str(empty / "data-dir"))
    monkeypatch.setenv("CSRP_CACHE_DIR", str(empty / "cache"))
    monkeypatch.chdir(tmp_path)


def _rows(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def _dump(path: Path, obj: object, protocol: int = pickle.DEFAULT_PROTOCOL) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        pickle.dump(obj, handle, protocol=protocol)


def write_cifar10(root: Path, binary: bool = False, seed: int = 0,
                  protocol: int = pickle.DEFAULT_PROTOCOL) -> dict[str, tuple[np.ndarray, ...]]:
    """Five train batches and a test batch; returns {split: (rows [N, 3072], labels [N])}."""
    rng = np.random.default_rng(seed)
    folder = root / ("cifar-10-batches-bin" if binary else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    batches = {f"data_batch_{i}": "train" for i in range(1, 6)} | {"test_batch": "test"}
    expected: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"train": [], "test": []}
    for name, split in batches.items():
        data, labels = _rows(rng, PER_BATCH), rng.integers(0, 10, PER_BATCH)
        expected[split].append((data, labels))
        if binary:
            records = np.concatenate([labels.astype(np.uint8)[:, None], data], axis=1)
            (folder / f"{name}.bin").write_bytes(records.tobytes())
        else:
            _dump(folder / name, {b"batch_label": f"{name} of 6".encode(),
                                  b"labels": labels.tolist(), b"data": data,
                                  b"filenames": [b"img.png"] * len(data)}, protocol)
    return {split: (np.concatenate([d for d, _ in parts]), np.concatenate([y for _, y in parts]))
            for split, parts in expected.items()}


def write_cifar100(root: Path, binary: bool = False,
                   seed: int = 1) -> dict[str, tuple[np.ndarray, ...]]:
    rng = np.random.default_rng(seed)
    folder = root / ("cifar-100-binary" if binary else "cifar-100-python")
    folder.mkdir(parents=True)
    expected = {}
    for split, n in (("train", 6), ("test", 3)):
        data, fine = _rows(rng, n), rng.integers(0, 100, n)
        coarse = (fine + 7) % 20  # differs from fine, so reading the wrong byte shows
        expected[split] = (data, fine)
        if binary:
            records = np.concatenate([coarse.astype(np.uint8)[:, None],
                                      fine.astype(np.uint8)[:, None], data], axis=1)
            (folder / f"{split}.bin").write_bytes(records.tobytes())
        else:
            _dump(folder / split, {b"filenames": [b"x.png"] * n, b"batch_label": b"training",
                                   b"fine_labels": fine.tolist(),
                                   b"coarse_labels": coarse.tolist(), b"data": data})
    return expected


# --- CIFAR ------------------------------------------------------------------------------------


def test_registry_lists_every_dataset():
    assert {"cifar10", "cifar100", "fashion-mnist", "tinyimagenet"} <= set(list_datasets())


def test_cifar_infos():
    c10, c100 = dataset_info("cifar10"), dataset_info("cifar100")
    assert c10.labels == ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                          "horse", "ship", "truck")
    assert (c10.num_classes, c10.input_shape) == (10, [3, 32, 32])
    assert c100.num_classes == len(c100.labels) == len(set(c100.labels)) == 100
    assert c100.labels[:3] == ("apple", "aquarium_fish", "baby") and c100.labels[-1] == "worm"
    assert list(c100.labels) == sorted(c100.labels)  # fine labels are indexed alphabetically
    for info in (c10, c100):
        assert len(info.mean) == len(info.std) == 3


@pytest.mark.parametrize("binary", [False, True], ids=["python", "binary"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar10_round_trip(tmp_path, binary, split):
    expected = write_cifar10(tmp_path / "data", binary=binary)
    data = load_dataset("cifar10", split, tmp_path / "data")
    rows, labels = expected[split]
    assert data.images.dtype == torch.uint8 and data.labels.dtype == torch.int64
    assert data.images.shape == (len(rows), 3, 32, 32)
    assert len(data) == (5 if split == "train" else 1) * PER_BATCH
    assert torch.equal(data.images.flatten(1), torch.from_numpy(rows))
    assert data.labels.tolist() == labels.tolist()
    assert data.info is dataset_info("cifar10") and data.split == split


@pytest.mark.parametrize("binary", [False, True], ids=["python", "binary"])
def test_cifar100_uses_fine_labels(tmp_path, binary):
    expected = write_cifar100(tmp_path, binary=binary)
    for split in ("train", "test"):
        data = load_dataset("cifar100", split, tmp_path)
        rows, fine = expected[split]
        assert data.images.shape == (len(rows), 3, 32, 32)
        assert torch.equal(data.images.flatten(1), torch.from_numpy(rows))
        assert data.labels.tolist() == fine.tolist()


def test_cifar_rows_are_red_green_blue_planes(tmp_path):
    """Byte c*1024 + y*32 + x of a row is channel c (R, G, B) at row y, column x."""
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    row = np.zeros((1, 3072), dtype=np.uint8)
    row[0, :1024], row[0, 1024:2048], row[0, 2048:] = 10, 20, 30  # flat R, G, B planes
    row[0, 0 * 1024 + 0 * 32 + 1] = 200  # R at (y=0, x=1)
    row[0, 1 * 1024 + 2 * 32 + 0] = 201  # G at (y=2, x=0)
    row[0, 2 * 1024 + 31 * 32 + 31] = 202  # B at (y=31, x=31)
    _dump(path, {b"labels": [3], b"data": row})
    image = load_dataset("cifar10", "test", tmp_path).images[0]
    assert image[0, 0, 1] == 200 and image[1, 2, 0] == 201 and image[2, 31, 31] == 202
    image[0, 0, 1], image[1, 2, 0], image[2, 31, 31] = 10, 20, 30
    assert image[0].unique().tolist() == [10]
    assert image[1].unique().tolist() == [20]
    assert image[2].unique().tolist() == [30]


def test_cifar_python_and_binary_agree(tmp_path):
    py = write_cifar10(tmp_path / "py", seed=5)
    binary = write_cifar10(tmp_path / "bin", binary=True, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(py["train"], binary["train"], strict=True))
    a, b = load_dataset("cifar10", "train", tmp_path / "py"), load_dataset("cifar10", "train",
                                                                           tmp_path / "bin")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_cifar_reads_every_pickle_protocol(tmp_path, protocol):
    """The official files are python-2 protocol-2 pickles; other protocols need other globals
    (``_codecs.encode`` below 3, ``_frombuffer`` at 5) and must load too."""
    expected = write_cifar10(tmp_path, protocol=protocol)
    data = load_dataset("cifar10", "test", tmp_path)
    assert torch.equal(data.images.flatten(1), torch.from_numpy(expected["test"][0]))


def test_cifar_root_may_be_the_batches_folder(tmp_path):
    write_cifar10(tmp_path)
    inner = tmp_path / "cifar-10-batches-py"
    a, b = load_dataset("cifar10", "test", tmp_path), load_dataset("cifar10", "test", inner)
    assert torch.equal(a.images, b.images)
    write_cifar100(tmp_path, binary=True)
    assert len(load_dataset("cifar100", "train", tmp_path / "cifar-100-binary")) == 6


def test_cifar_default_places_are_searched(tmp_path, monkeypatch):
    write_cifar10(tmp_path / "shared" / "cifar10")
    monkeypatch.setenv("CSRP_DATA_DIR", str(tmp_path / "shared"))
    assert len(load_dataset("cifar10", "test")) == PER_BATCH


def test_cifar_subsets_are_seeded(tmp_path):
    write_cifar10(tmp_path)
    data = load_dataset("cifar10", "train", tmp_path)
    a, b, c = data.subset(0.25, seed=3), data.subset(0.25, seed=3), data.subset(0.25, seed=4)
    assert len(a) == round(0.25 * len(data)) == 5
    assert a.indices == b.indices and a.indices != c.indices
    assert a.indices == sorted(set(a.indices))
    assert torch.equal(a.images, data.images[a.indices])
    assert torch.equal(a.labels, data.labels[a.indices])
    assert len(data.subset(0.05, seed=0)) == 1  # round(0.05 * 20) = 1


def _evil(kind: str, marker: Path) -> object:
    """Objects whose unpickling would run code (none of it may run)."""
    import builtins
    import shutil
    import subprocess

    class Payload:
        def __reduce__(self):
            if kind == "os.system":
                return (os.system, (f"touch {marker}",))
            if kind == "subprocess":
                return (subprocess.call, (["touch", str(marker)],))
            if kind == "eval":
                return (builtins.eval, (f"open({str(marker)!r}, 'w')",))
            return (shutil.rmtree, (str(marker.parent / "victim"),))

    return Payload()


@pytest.mark.parametrize("kind", ["os.system", "subprocess", "eval", "rmtree"])
@pytest.mark.parametrize("nested", [False, True], ids=["top", "inside-dict"])
def test_malicious_cifar_pickle_is_refused(tmp_path, kind, nested):
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    (tmp_path / "victim").mkdir()
    payload = _evil(kind, marker)
    obj = {b"labels": [0], b"data": payload} if nested else payload
    _dump(tmp_path / "cifar-10-batches-py" / "test_batch", obj, protocol=2)
    with pytest.raises(UserError, match="refusing to unpickle"):
        load_dataset("cifar10", "test", tmp_path)
    assert not marker.exists() and (tmp_path / "victim").is_dir()


def test_cifar_pickle_codecs_only_latin1(tmp_path):
    """``_codecs.encode`` is allowed for protocol 0-2 bytes, but only as latin-1."""
    import codecs

    class Zip:
        def __reduce__(self):
            return (codecs.encode, ("x" * 10, "zlib_codec"))

    write_cifar10(tmp_path)
    _dump(tmp_path / "cifar-10-batches-py" / "test_batch", {b"data": Zip()}, protocol=2)
    with pytest.raises(UserError, match="refusing"):
        load_dataset("cifar10", "test", tmp_path)


@pytest.mark.parametrize("content, match", [
    (b"", "corrupt CIFAR batch"),
    (b"not a pickle at all", "corrupt CIFAR batch"),
    (pickle.dumps([1, 2, 3]), "not a CIFAR batch"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}), "expected 'data' and 'labels'"),
    (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}),
     r"uint8 \[N, 3072\]"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}), "float32"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "1 labels for 2"),
    (pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}), "outside 0..9"),
])
def test_bad_cifar_python_batch(tmp_path, content, match):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(content)
    with pytest.raises(UserError, match=match):
        load_dataset("cifar10", "test", tmp_path)


def test_truncated_cifar_pickle(tmp_path):
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(UserError, match="data_batch_3: corrupt"):
        load_dataset("cifar10", "train", tmp_path)


def test_bad_cifar_binary_batch(tmp_path):
    write_cifar10(tmp_path, binary=True)
    path = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(UserError, match="whole number of 3073-byte records"):
        load_dataset("cifar10", "test", tmp_path)
    path.write_bytes(bytes([12]) + bytes(3072))  # label 12 in a 10-class dataset
    with pytest.raises(UserError, match=r"outside 0..9"):
        load_dataset("cifar10", "test", tmp_path)


def test_incomplete_cifar_folder(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    assert len(load_dataset("cifar10", "test", tmp_path)) == PER_BATCH  # test split is whole
    with pytest.raises(UserError, match=r"incomplete.*data_batch_4"):
        load_dataset("cifar10", "train", tmp_path)


@pytest.mark.parametrize("name, folder", [("cifar10", "cifar-10-batches-py"),
                                          ("cifar100", "cifar-100-python"),
                                          ("tinyimagenet", "tiny-imagenet-200")])
def test_missing_data_names_dataset_places_and_remedy(tmp_path, name, folder):
    given = tmp_path / "empty"
    given.mkdir()
    with pytest.raises(UserError) as error:
        load_dataset(name, "train", given)
    message = str(error.value)
    assert "\n" not in message
    assert f"dataset {name!r} not found" in message
    assert str(given) in message and str(given / folder) in message
    assert "--data-root" in message
    assert ("cs.toronto.edu/~kriz/cifar.html" if name.startswith("cifar")
            else "tiny-imagenet-200.zip") in message
    with pytest.raises(UserError) as error:  # no root: CSRP_DATA_DIR's places, no fallback
        load_dataset(name, "test")
    assert "nowhere" in str(error.value) and str(Path("data") / name) not in str(error.value)


def test_unknown_dataset_and_split():
    with pytest.raises(UserError, match=r"unknown dataset 'imagenet'.*cifar10.*tinyimagenet"):
        load_dataset("imagenet", "train")
    with pytest.raises(UserError, match="unknown split 'val'"):
        load_dataset("cifar10", "val")


# --- TinyImageNet -----------------------------------------------------------------------------

WNIDS = ["n02124075", "n01443537", "n04067472"]  # not sorted: wnids.txt order is the index
WORDS = {"n02124075": "Egyptian cat", "n01443537": "goldfish, Carassius auratus",
         "n04067472": "reel", "n00000001": "unrelated, thing"}


def _png_as_jpeg(path: Path, pixels: np.ndarray) -> None:
    """Lossless PNG content under the official .JPEG name (PIL reads by content)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "L" if pixels.ndim == 2 else "RGB"
    Image.fromarray(pixels, mode).save(path, format="PNG")


def write_tinyimagenet(root: Path, wnids: list[str] = WNIDS, per_class: int = 2,
                       seed: int = 0) -> dict[str, tuple[list[np.ndarray], list[int]]]:
    """An official-layout tree; returns {split: (HWC uint8 images, labels)} in load order."""
    rng = np.random.default_rng(seed)
    tree = root / "tiny-imagenet-200"
    tree.mkdir(parents=True)
    (tree / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (tree / "words.txt").write_text("".join(f"{w}\t{t}\n" for w, t in WORDS.items()))
    train: tuple[list[np.ndarray], list[int]] = ([], [])
    for label, wnid in enumerate(wnids):
        for i in range(per_class):
            pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            _png_as_jpeg(tree / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", pixels)
            train[0].append(pixels)
            train[1].append(label)
        (tree / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    val: tuple[list[np.ndarray], list[int]] = ([], [])
    lines = []
    for i, label in enumerate([2, 0, 1, 2]):
        pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) if i != 1 else \
            rng.integers(0, 256, (64, 64), dtype=np.uint8)  # one grey image
        _png_as_jpeg(tree / "val" / "images" / f"val_{i}.JPEG", pixels)
        val[0].append(pixels if pixels.ndim == 3 else np.repeat(pixels[:, :, None], 3, 2))
        val[1].append(label)
        lines.append(f"val_{i}.JPEG\t{wnids[label]}\t0\t3\t60\t62\n")
    (tree / "val" / "val_annotations.txt").write_text("".join(lines))
    (tree / "test" / "images").mkdir(parents=True)  # the official unlabelled test set: unused
    return {"train": train, "test": val}


@pytest.mark.parametrize("split", ["train", "test"])
def test_tinyimagenet_round_trip(tmp_path, split):
    expected = write_tinyimagenet(tmp_path)
    data = load_dataset("tinyimagenet", split, tmp_path)
    images, labels = expected[split]
    assert data.images.dtype == torch.uint8 and data.images.shape == (len(images), 3, 64, 64)
    assert data.labels.tolist() == labels
    assert torch.equal(data.images, torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2))
    assert data.info.labels == ("Egyptian cat", "goldfish", "reel")  # words.txt, first name
    assert data.info.num_classes == 3 and data.info.input_shape == [3, 64, 64]


def test_tinyimagenet_root_may_be_the_tree(tmp_path):
    write_tinyimagenet(tmp_path)
    assert len(load_dataset("tinyimagenet", "test", tmp_path / "tiny-imagenet-200")) == 4


def test_tinyimagenet_real_jpeg_decodes(tmp_path):
    """JPEG is lossy: shapes and labels exact, pixels close."""
    write_tinyimagenet(tmp_path)
    smooth = np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (64, 1, 3))
    path = tmp_path / "tiny-imagenet-200" / "val" / "images" / "val_0.JPEG"
    Image.fromarray(smooth).save(path, format="JPEG", quality=95)
    data = load_dataset("tinyimagenet", "test", tmp_path)
    decoded = data.images[0].permute(1, 2, 0).to(torch.int16)
    assert (decoded - torch.from_numpy(smooth).to(torch.int16)).abs().float().mean() < 3
    assert data.labels[0] == 2


def test_tinyimagenet_official_classes(tmp_path):
    info = dataset_info("tinyimagenet")
    assert info.num_classes == len(info.labels) == len(OFFICIAL_WNIDS) == 200
    assert len(set(OFFICIAL_WNIDS)) == 200
    assert info.labels[:3] == ("Egyptian cat", "reel", "volleyball")
    assert info.mean == (0.485, 0.456, 0.406) and info.std == (0.229, 0.224, 0.225)
    # a tree with the official wnids.txt (no words.txt) loads with the registered info
    tree = tmp_path / "tiny-imagenet-200"
    (tree / "val" / "images").mkdir(parents=True)
    (tree / "wnids.txt").write_text("\n".join(OFFICIAL_WNIDS) + "\n")
    _png_as_jpeg(tree / "val" / "images" / "val_0.JPEG", np.zeros((64, 64, 3), np.uint8))
    (tree / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn04067472\t1\t2\t3\t4\n")
    data = load_dataset("tinyimagenet", "test", tmp_path)
    assert data.info is info and data.labels.tolist() == [1]


def test_tinyimagenet_subsets_are_seeded(tmp_path):
    write_tinyimagenet(tmp_path, per_class=4)
    data = load_dataset("tinyimagenet", "train", tmp_path)
    a, b = data.subset(0.5, seed=1), data.subset(0.5, seed=1)
    assert len(a) == 6 and a.indices == b.indices
    assert torch.equal(a.images, data.images[a.indices])


def test_tinyimagenet_bad_trees(tmp_path):
    write_tinyimagenet(tmp_path)
    tree = tmp_path / "tiny-imagenet-200"
    (tree / "val" / "images" / "val_3.JPEG").write_bytes(b"garbage")
    with pytest.raises(UserError, match=r"val_3.JPEG: cannot read image"):
        load_dataset("tinyimagenet", "test", tmp_path)
    _png_as_jpeg(tree / "val" / "images" / "val_3.JPEG", np.zeros((32, 64, 3), np.uint8))
    with pytest.raises(UserError, match="64x32 image"):
        load_dataset("tinyimagenet", "test", tmp_path)
    (tree / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99999999\t0\t0\t1\t1\n")
    with pytest.raises(UserError, match=r"'n99999999' is not in wnids.txt"):
        load_dataset("tinyimagenet", "test", tmp_path)
    (tree / "val" / "val_annotations.txt").unlink()
    with pytest.raises(UserError, match=r"val_annotations.txt is missing"):
        load_dataset("tinyimagenet", "test", tmp_path)
    (tree / "wnids.txt").write_text("\n".join([*WNIDS, "n00000001"]))
    with pytest.raises(UserError, match="n00000001/images is missing"):
        load_dataset("tinyimagenet", "train", tmp_path)


# --- Fashion-MNIST ----------------------------------------------------------------------------


def _idx(path: Path, array: np.ndarray) -> None:
    """IDX file: magic (0, 0, type 0x08 = ubyte, ndim), big-endian int32 dims, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_from_user_folder(tmp_path):
    rng = np.random.default_rng(0)
    expected = {}
    for split, prefix, n in (("train", "train", 5), ("test", "t10k", 3)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        _idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
        _idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels)
        expected[split] = images, labels
    for split, (images, labels) in expected.items():
        data = load_dataset("fashion-mnist", split, tmp_path)
        assert data.images.dtype == torch.uint8 and data.images.shape == (len(images), 1, 28, 28)
        assert torch.equal(data.images[:, 0], torch.from_numpy(images))
        assert data.labels.tolist() == labels.tolist()
        assert data.source == str(tmp_path)


def test_fashion_mnist_missing_user_folder(tmp_path):
    with pytest.raises(UserError, match=r"'fashion-mnist' not found.*dataset-fashion-mnist"):
        load_dataset("fashion-mnist", "train", tmp_path)


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_fashion_mnist_from_debian(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CSRP_DATA_DIR")  # a set CSRP_DATA_DIR is the only place looked in
    train, test = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
    assert (len(train), len(test)) == (60000, 10000)
    assert train.images.shape[1:] == (1, 28, 28) and train.images.dtype == torch.uint8
    assert sorted(test.labels.unique().tolist()) == list(range(10))
    assert train.source == str(DEBIAN_DIR)
