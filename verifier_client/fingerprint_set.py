"""Fingerprint set files (docs/design.md 3.4): N samples on the 8-bit grid, labels, provenance.

One safetensors file, never a pickle::

    tensors   images   float32 [N, C, H, W] in [0, 1], every value k / 255 (so sending the set
                       as UINT8 over the wire changes nothing)
              labels   int64 [N], the target's label for each sample (what a stolen copy answers)
              sources  int64 [N] (optional), index of the clean seed image each sample grew from
                       in the seed pool named by ``metadata["seeds"]``; -1 for samples from noise
    header    __metadata__ = {"format": "csrp-fingerprint-set", "format_version": "1",
                              "metadata": "<JSON object>"}

The metadata JSON holds at least ``method``, ``parameters``, ``target`` (path, name, arch,
dataset, input shape and the target's lineage), ``seed``, ``code_version``,
``candidates_tried`` and ``created``. Files are written atomically (temporary name, then rename)
and validated on load; any corrupt, truncated or inconsistent file is a one-line ``UserError``.

The arrays are held as NumPy (``images_array``, ``labels_array``, ...), so the owner's HTTP
commands (``verify``, ``probe``, remote ``calibrate``) run without torch; ``images``, ``labels``
and ``sources`` give torch views of the same memory to the code that generates or matches
in-process (torch is imported only then).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models import fingerprint_file
from models.atomic import write_bytes
from models.config import ModelConfig
from models.errors import UserError
from models.fingerprint_file import REQUIRED_METADATA

GRID_TOLERANCE = 1e-3  # |x * 255 - round(x * 255)| allowed in float32 (values are k / 255)


def snap_to_grid(images: Any) -> Any:
    """Round to the nearest 8-bit level: ``round(clamp(x, 0, 1) * 255) / 255`` (float32), for
    a torch tensor (returned as one) or a NumPy array."""
    if isinstance(images, np.ndarray):
        return (np.round(np.clip(images, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)
    import torch

    return torch.round(images.clamp(0.0, 1.0) * 255.0).div(255.0).to(torch.float32)


def on_grid(images: Any) -> bool:
    scaled = np.asarray(images, dtype=np.float64) * 255.0
    return bool(np.abs(scaled - np.round(scaled)).max() <= GRID_TOLERANCE) if scaled.size \
        else True


def _numpy(value: Any) -> np.ndarray:
    """A torch tensor (any device) or array-like as a contiguous NumPy array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(value)


def target_metadata(path: str | Path | None, config: ModelConfig | None) -> dict[str, Any]:
    """What a set records about its target: where it was, what it is, how it was made."""
    info: dict[str, Any] = {"path": str(path) if path is not None else None}
    if config is not None:
        info.update(name=config.name, arch=config.arch, dataset=config.dataset,
                    input_shape=list(config.input_shape), num_classes=config.num_classes,
                    lineage=json.loads(config.lineage.model_dump_json()))
    return info


@dataclass(init=False)
class FingerprintSet:
    """``images`` float32 [N, C, H, W] on the 8-bit grid, ``labels`` int64 [N], ``metadata``.

    ``sources`` (int64 [N], optional) indexes the clean seed of each sample (-1: from noise).
    ``path`` and ``sha256`` say which file a loaded set came from (``None`` for a set built in
    memory; :meth:`save` fills them in). Construction validates everything, so an instance is
    always a well-formed set.
    """

    images_array: np.ndarray
    labels_array: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    sources_array: np.ndarray | None = None
    path: Path | None = None
    sha256: str | None = None

    def __init__(self, images: Any, labels: Any, metadata: dict[str, Any] | None = None,
                 sources: Any = None, path: Path | None = None,
                 sha256: str | None = None) -> None:
        self.images_array = _numpy(images)
        self.labels_array = _numpy(labels)
        self.metadata = {} if metadata is None else metadata
        self.sources_array = None if sources is None else _numpy(sources)
        self.path, self.sha256 = path, sha256
        problem = self._problem()
        if problem:
            raise UserError(f"invalid fingerprint set: {problem}")

    def _problem(self) -> str | None:
        images, labels = self.images_array, self.labels_array
        if images.dtype != np.float32 or images.ndim != 4:
            return f"images must be float32 [N, C, H, W], got {images.dtype} {list(images.shape)}"
        if images.shape[0] < 1 or any(s < 1 for s in images.shape):
            return f"images must be non-empty, got shape {list(images.shape)}"
        if labels.dtype != np.int64 or labels.shape != (images.shape[0],):
            return (f"labels must be int64 [{images.shape[0]}], got {labels.dtype} "
                    f"{list(labels.shape)}")
        if bool((labels < 0).any()):
            return "labels must be non-negative class indices"
        sources = self.sources_array
        if sources is not None and (sources.dtype != np.int64 or sources.shape != labels.shape):
            return f"sources must be int64 [{labels.shape[0]}]"
        if not bool(np.isfinite(images).all()):
            return "images hold NaN or infinite values"
        if float(images.min()) < 0.0 or float(images.max()) > 1.0:
            low, high = float(images.min()), float(images.max())
            return f"images must lie in [0, 1], found [{low}, {high}]"
        if not on_grid(images):
            return "images are not on the 8-bit grid (every value must be k / 255)"
        if not isinstance(self.metadata, dict):
            return "metadata must be a JSON object"
        from verifier_client.representations import REPRESENTATIONS

        name = self.metadata.get("representation", "labels")
        if name not in REPRESENTATIONS:
            return f"unknown representation {name!r}"
        return REPRESENTATIONS.get(name).check(self)

    # ---- torch views (the same memory; torch is imported only here) ------------------------
    @property
    def images(self) -> Any:
        import torch

        return torch.from_numpy(self.images_array)

    @property
    def labels(self) -> Any:
        import torch

        return torch.from_numpy(self.labels_array)

    @property
    def sources(self) -> Any:
        if self.sources_array is None:
            return None
        import torch

        return torch.from_numpy(self.sources_array)

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return int(self.images_array.shape[0])

    @property
    def n(self) -> int:
        return len(self)

    @property
    def method(self) -> str:
        """The method that made the set (metadata), else the file's stem."""
        return str(self.metadata.get("method") or (self.path.stem if self.path else "?"))

    @property
    def name(self) -> str:
        """The file name, or the method for a set that has no file."""
        return self.path.name if self.path is not None else self.method

    @property
    def num_classes(self) -> int | None:
        """The target's number of classes (metadata), when recorded: answers outside it are
        protocol violations."""
        value = self.metadata.get("num_classes") or (self.metadata.get("target") or {}).get(
            "num_classes")
        return int(value) if isinstance(value, int) and value > 0 else None

    @property
    def input_shape(self) -> list[int]:
        return [int(s) for s in self.images_array.shape[1:]]

    def as_uint8(self) -> np.ndarray:
        """The images as they travel on the wire: uint8 [N, C, H, W] (exact, no rounding loss)."""
        return np.round(self.images_array * 255.0).astype(np.uint8)

    def check_input_shape(self, shape: list[int] | tuple[int, ...], what: str = "model") -> None:
        """``UserError`` unless ``shape`` ([C, H, W]) is this set's input shape."""
        if list(shape) != self.input_shape:
            raise UserError(f"fingerprint set input shape {self.input_shape} does not match the "
                            f"{what}'s input shape {list(shape)}")

    # ------------------------------------------------------------------ file format
    def to_bytes(self) -> bytes:
        tensors = {"images": self.images_array, "labels": self.labels_array}
        if self.sources_array is not None:
            tensors["sources"] = self.sources_array
        return fingerprint_file.encode(tensors, self.metadata)

    def save(self, path: str | Path) -> Path:
        """Write the set atomically (nothing is left behind if anything fails)."""
        missing = [key for key in REQUIRED_METADATA if key not in self.metadata]
        if missing:
            raise UserError(f"fingerprint set metadata lacks {', '.join(missing)}")
        try:
            data = self.to_bytes()
        except (TypeError, ValueError) as error:
            raise UserError(f"fingerprint set metadata is not JSON ({error})") from None
        path = Path(path)
        write_bytes(path, data)
        self.path, self.sha256 = path, hashlib.sha256(data).hexdigest()
        return path

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "<bytes>",
                   path: Path | None = None) -> FingerprintSet:
        metadata, tensors = fingerprint_file.decode(data, where)
        try:
            return cls(tensors["images"], tensors["labels"], metadata, tensors.get("sources"),
                       path=path, sha256=hashlib.sha256(data).hexdigest())
        except UserError as error:
            raise UserError(f"{where}: not a valid fingerprint set file "
                            f"({str(error).removeprefix('invalid fingerprint set: ')})") from None

    @classmethod
    def load(cls, path: str | Path) -> FingerprintSet:
        """Read and validate a set file; any problem is one ``UserError`` line."""
        path = Path(path)
        data, _, _ = fingerprint_file.read(path)
        return cls.from_bytes(data, str(path), path.resolve())

    # ------------------------------------------------------------------ what is sent, scored
    @property
    def representation(self) -> str:
        """How answers become outcomes (``verifier_client.representations``)."""
        return str(self.metadata.get("representation", "labels"))

    @functools.cached_property
    def queries(self) -> np.ndarray:
        """The images a verification sends, float32 ``[Q, C, H, W]`` on the 8-bit grid (the
        samples themselves, or e.g. a Blind Walk's steps around them)."""
        from verifier_client.representations import representation_of

        return representation_of(self).queries(self)

    @property
    def query_count(self) -> int:
        return int(self.queries.shape[0])

    def score(self, labels: np.ndarray) -> np.ndarray:
        """Bool outcomes ``[R, M]`` of answered labels ``[R, Q]`` (modal labels with votes)."""
        from verifier_client.representations import representation_of

        labels = np.asarray(labels)
        if labels.ndim != 2 or labels.shape[1] != self.query_count:
            raise UserError(f"{self.name}: {labels.shape[-1] if labels.ndim else 0} labels "
                            f"answered for {self.query_count} queries")
        return representation_of(self).outcomes(self, labels)


def resolve_set_paths(items: Sequence[str | Path]) -> list[Path]:
    """Files as given, folders expanded to their ``*.safetensors`` (sorted); duplicates dropped."""
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(path.glob("*.safetensors"))
            if not found:
                raise UserError(f"{path}: no *.safetensors fingerprint sets in this folder")
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        else:
            raise UserError(f"{path}: no such fingerprint set file or folder")
    unique = list(dict.fromkeys(p.resolve() for p in paths))
    if not unique:
        raise UserError("no fingerprint sets given")
    return unique


def load_sets(items: Sequence[str | Path]) -> list[FingerprintSet]:
    """Read and validate every set named by ``items`` (files, or folders of ``*.safetensors``)."""
    return [FingerprintSet.load(path) for path in resolve_set_paths(items)]

