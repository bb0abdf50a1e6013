"""The fingerprint set file: one safetensors file, validated on load, written atomically, never a
pickle; every corrupt or inconsistent file is one UserError line."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as save_tensors

from models.errors import UserError
from models.fingerprint_file import FORMAT
from verifier_client.fingerprint_set import FingerprintSet, snap_to_grid

META = {"method": "vce", "parameters": {"steps": 3}, "target": {"name": "t"}, "seed": 1,
        "code_version": "test", "candidates_tried": 5, "created": "2024-01-01T00:00:00+00:00"}


def make_set(n: int = 4, shape: tuple[int, ...] = (1, 28, 28), **meta) -> FingerprintSet:
    gen = torch.Generator().manual_seed(0)
    images = snap_to_grid(torch.rand(n, *shape, generator=gen))
    labels = torch.randint(0, 10, (n,), generator=gen)
    return FingerprintSet(images, labels, {**META, **meta}, torch.arange(n) - 1)


def raw_file(path: Path, tensors: dict[str, torch.Tensor], metadata: object = META,
             fmt: str = FORMAT) -> Path:
    header = {"format": fmt, "format_version": "1",
              "metadata": metadata if isinstance(metadata, str) else json.dumps(metadata)}
    path.write_bytes(save_tensors(tensors, metadata=header))
    return path


def test_round_trip_is_exact(tmp_path):
    fset = make_set()
    path = fset.save(tmp_path / "sub" / "set.safetensors")
    back = FingerprintSet.load(path)
    assert torch.equal(back.images, fset.images) and back.images.dtype == torch.float32
    assert torch.equal(back.labels, fset.labels) and back.labels.dtype == torch.int64
    assert torch.equal(back.sources, fset.sources)
    assert back.metadata == fset.metadata
    assert back.input_shape == [1, 28, 28] and len(back) == 4 and back.method == "vce"
    assert torch.equal(torch.from_numpy(back.as_uint8()).to(torch.float32) / 255, back.images)
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary left behind


def test_every_8bit_level_survives(tmp_path):
    images = (torch.arange(256, dtype=torch.float32) / 255).reshape(1, 1, 16, 16)
    fset = FingerprintSet(images, torch.zeros(1, dtype=torch.int64), dict(META))
    back = FingerprintSet.load(fset.save(tmp_path / "levels.safetensors"))
    assert back.as_uint8().flatten().tolist() == list(range(256))


def test_file_starting_with_0x80_is_not_taken_for_a_pickle(tmp_path):
    """The header length is the first 8 bytes: 0x..80 is a legal safetensors file."""
    fset = make_set()
    while fset.to_bytes()[:1] != b"\x80":
        fset.metadata["padding"] = fset.metadata.get("padding", "") + "-"
    back = FingerprintSet.load(fset.save(tmp_path / "x80.safetensors"))
    assert back.metadata["padding"] == fset.metadata["padding"]


def test_pickles_are_refused(tmp_path):
    path = tmp_path / "set.pt"
    torch.save({"images": torch.zeros(1)}, path)
    with pytest.raises(UserError, match=r"looks like a pickle/torch\.save file"):
        FingerprintSet.load(path)
    path.write_bytes(b"\x80\x04\x95" + b"\x00" * 64)
    with pytest.raises(UserError, match="looks like a pickle"):
        FingerprintSet.load(path)


@pytest.mark.parametrize("cut", [0, 5, 8, 40, -10])
def test_truncated_files_are_refused(tmp_path, cut):
    data = make_set().to_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[:cut])
    with pytest.raises(UserError, match=r"cut.safetensors: not a valid fingerprint set file"):
        FingerprintSet.load(path)


def test_garbage_and_missing_files(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(struct.pack("<Q", 12) + b"not json at all" + b"\x00" * 20)
    with pytest.raises(UserError, match="corrupt safetensors header"):
        FingerprintSet.load(path)
    with pytest.raises(UserError, match="fingerprint set file not found"):
        FingerprintSet.load(tmp_path / "missing.safetensors")


def test_other_safetensors_files_are_refused(tmp_path):
    path = tmp_path / "weights.safetensors"
    path.write_bytes(save_tensors({"w": torch.zeros(2)}))
    with pytest.raises(UserError, match="no 'csrp-fingerprint-set' header"):
        FingerprintSet.load(path)


GOOD_IMAGES = torch.zeros(2, 1, 4, 4)
GOOD_LABELS = torch.zeros(2, dtype=torch.int64)


@pytest.mark.parametrize(("tensors", "metadata", "message"), [
    ({"labels": GOOD_LABELS}, META, "tensor 'images' missing"),
    ({"images": GOOD_IMAGES}, META, "tensor 'labels' missing"),
    ({"images": GOOD_IMAGES, "labels": GOOD_LABELS, "extra": GOOD_LABELS.clone()}, META,
     "unexpected tensors"),
    ({"images": GOOD_IMAGES.double(), "labels": GOOD_LABELS}, META, "images must be float32"),
    ({"images": GOOD_IMAGES[0], "labels": GOOD_LABELS}, META, r"images must be float32 \[N, C"),
    ({"images": GOOD_IMAGES, "labels": GOOD_LABELS.int()}, META, "labels must be int64"),
    ({"images": GOOD_IMAGES, "labels": GOOD_LABELS[:1]}, META, r"labels must be int64 \[2\]"),
    ({"images": GOOD_IMAGES, "labels": -GOOD_LABELS - 1}, META, "non-negative"),
    ({"images": GOOD_IMAGES + 1.5, "labels": GOOD_LABELS}, META, r"must lie in \[0, 1\]"),
    ({"images": GOOD_IMAGES + 0.3, "labels": GOOD_LABELS}, META, "not on the 8-bit grid"),
    ({"images": GOOD_IMAGES * float("nan"), "labels": GOOD_LABELS}, META, "NaN"),
    ({"images": GOOD_IMAGES, "labels": GOOD_LABELS}, "{not json", "metadata is not valid JSON"),
    ({"images": GOOD_IMAGES, "labels": GOOD_LABELS}, "[1, 2]", "metadata is not a JSON object"),
    ({"images": GOOD_IMAGES, "labels": GOOD_LABELS}, {"method": "vce"}, "metadata lacks"),
])
def test_inconsistent_files_are_refused(tmp_path, tensors, metadata, message):
    path = raw_file(tmp_path / "bad.safetensors", tensors, metadata)
    with pytest.raises(UserError, match=message):
        FingerprintSet.load(path)


def test_constructor_validates_and_save_is_atomic(tmp_path):
    with pytest.raises(UserError, match="not on the 8-bit grid"):
        FingerprintSet(torch.full((1, 1, 2, 2), 0.5), torch.zeros(1, dtype=torch.int64), META)
    fset = make_set()
    fset.metadata["bad"] = float("nan")  # not JSON
    with pytest.raises(UserError, match="not JSON"):
        fset.save(tmp_path / "nan.safetensors")
    incomplete = make_set()
    del incomplete.metadata["seed"]
    with pytest.raises(UserError, match="metadata lacks seed"):
        incomplete.save(tmp_path / "incomplete.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_input_shape_check():
    fset = make_set(shape=(3, 32, 32))
    fset.check_input_shape([3, 32, 32])
    with pytest.raises(UserError, match=r"input shape \[3, 32, 32\] does not match the model's "
                                        r"input shape \[1, 28, 28\]"):
        fset.check_input_shape([1, 28, 28])


def test_uint8_view_is_exact() -> None:
    grid = torch.arange(256, dtype=torch.float32).div(255).reshape(1, 1, 16, 16)
    fset = FingerprintSet(grid, torch.zeros(1, dtype=torch.int64), {"method": "m"})
    assert fset.as_uint8().ravel().tolist() == list(range(256))
