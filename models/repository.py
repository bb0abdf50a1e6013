"""The model repository (docs/design.md 3.2): one folder per model, ``config.json`` plus weights.

```
<repo>/<model>/config.json       ModelConfig below
<repo>/<model>/model.safetensors  torch weights (Classifier state dict), and/or
<repo>/<model>/model.onnx         the exported graph (the int8 entry has only this)
```
No pickles, ever: weights are read with safetensors; anything that looks like a pickle or a
``torch.save`` zip is refused with a clear error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from models.architectures import Classifier, Normalize, create_model
from models.atomic import atomic_dir, write_json
from models.errors import UserError
from models.provenance import code_version, utc_now
from models.transforms import build_transform

MODEL_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")  # used with fullmatch
CONFIG_FILE, WEIGHTS_FILE, ONNX_FILE = "config.json", "model.safetensors", "model.onnx"
_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # pickle protocol 2+ / torch.save zip archive


def validate_model_name(name: str) -> str:
    """Model names are ``[a-z0-9][a-z0-9._-]*`` (no slashes, no "..": nothing outside the repo)."""
    if not isinstance(name, str) or not MODEL_NAME_RE.fullmatch(name) or ".." in name:
        raise UserError(f"invalid model name {name!r}: use [a-z0-9][a-z0-9._-]* (max 128 chars)")
    return name


class Lineage(BaseModel):
    """How a model was made: its parent, the modification and everything needed to redo it."""

    model_config = ConfigDict(extra="forbid")
    parent: str | None = None
    modification: str = "train"
    parameters: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    code_version: str = Field(default_factory=code_version)
    created: str = Field(default_factory=utc_now)


class ModelConfig(BaseModel):
    """``config.json`` of a repository entry."""

    model_config = ConfigDict(extra="forbid")
    name: str
    arch: str
    dataset: str
    num_classes: int = Field(ge=2)
    input_shape: list[int] = Field(min_length=3, max_length=3)
    labels: list[str]
    mean: list[float]
    std: list[float]
    preprocessing: dict[str, Any] | None = None
    backend: Literal["onnx", "torch"] = "onnx"
    metrics: dict[str, Any] = Field(default_factory=dict)
    lineage: Lineage = Field(default_factory=Lineage)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not MODEL_NAME_RE.fullmatch(value):
            raise ValueError(f"invalid model name {value!r}")
        return value

    @field_validator("preprocessing")
    @classmethod
    def _preprocessing(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        build_transform(value)  # raises ValueError naming the bad key and its range
        return value

    @field_validator("input_shape")
    @classmethod
    def _shape(cls, value: list[int]) -> list[int]:
        if any(v < 1 for v in value):
            raise ValueError(f"input_shape must be positive [C, H, W], got {value}")
        return value


def build_classifier(config: ModelConfig) -> Classifier:
    """An untrained ``Normalize + architecture`` module for ``config`` (eval mode)."""
    channels, height, _ = config.input_shape
    net = create_model(config.arch, config.num_classes, channels, height)
    return Classifier(Normalize(config.mean, config.std), net).eval()


def entry_dir(repo: str | Path, name: str) -> Path:
    return Path(repo) / validate_model_name(name)


def load_config(path: str | Path) -> ModelConfig:
    """Read and validate ``<path>/config.json``."""
    config_path = Path(path) / CONFIG_FILE
    if not config_path.is_file():
        raise UserError(f"{config_path}: missing (not a model repository entry)")
    try:
        return ModelConfig.model_validate_json(config_path.read_bytes())
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"{config_path}: invalid config ({where}: {first['msg']})") from None


def looks_like_safetensors(head: bytes, size: int) -> bool:
    """A safetensors file starts with a little-endian u64 header length, then a JSON ``{``."""
    if len(head) < 9:
        return False
    header_length = int.from_bytes(head[:8], "little")
    return 2 <= header_length <= size - 8 and head[8:9] == b"{"


def refuse_pickles(path: Path) -> None:
    """Raise ``UserError`` when ``path`` is a pickle or ``torch.save`` archive, not safetensors.

    A safetensors header length whose low byte is 0x80 also starts with the pickle opcode, so
    the safetensors layout is checked first.
    """
    with path.open("rb") as handle:
        head = handle.read(9)
    if looks_like_safetensors(head, path.stat().st_size):
        return
    if head.startswith(_PICKLE_MAGIC):
        raise UserError(f"{path}: looks like a pickle/torch.save file; refusing to unpickle it "
                        "(only safetensors and ONNX are loaded)")


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Weights from a safetensors file; pickles and corrupt files are refused."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: missing weights file")
    refuse_pickles(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise UserError(f"{path}: corrupt safetensors file ({error})") from None


def load_model(
    path: str | Path | Entry, device: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelConfig]:
    """The torch model of an entry, in eval mode, and its config."""
    entry = as_entry(path)
    path, config = entry.path, entry.config
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise UserError(f"{path}: no {WEIGHTS_FILE} (backend {config.backend!r} entries made by "
                        "int8 compression hold only model.onnx; use models.runtime.load_predictor)")
    model = build_classifier(config)
    try:
        model.load_state_dict(load_state_dict(weights), strict=True)
    except RuntimeError as error:
        raise UserError(f"{weights}: weights do not fit {config.arch!r}: "
                        f"{str(error).splitlines()[0]}") from None
    return model.to(device).eval(), config


def save_entry(path: str | Path, config: ModelConfig, model: nn.Module | None = None,
               onnx_bytes: bytes | None = None) -> Path:
    """Write a whole entry atomically (temporary folder, then rename)."""
    path = Path(path)
    validate_model_name(path.name)
    if config.name != path.name:
        config = config.model_copy(update={"name": path.name})
    if model is None and onnx_bytes is None:
        raise ValueError("an entry needs torch weights, an ONNX graph, or both")
    with atomic_dir(path) as tmp:
        if model is not None:
            state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_FILE), metadata={"arch": config.arch})
        if onnx_bytes is not None:
            (tmp / ONNX_FILE).write_bytes(onnx_bytes)
        write_json(tmp / CONFIG_FILE, json.loads(config.model_dump_json()))
    return path


@dataclass(frozen=True)
class Entry:
    """A repository entry read once: its folder and its config (pass it where a path would make
    the callee read config.json again)."""

    path: Path
    config: ModelConfig

    @classmethod
    def load(cls, path: str | Path) -> Entry:
        path = Path(path)
        return cls(path, load_config(path))

    @property
    def name(self) -> str:
        return self.path.name


def as_entry(item: str | Path | Entry) -> Entry:
    """``item`` if it is an :class:`Entry`, else the entry loaded from that folder."""
    return item if isinstance(item, Entry) else Entry.load(item)


def list_entries(repo: str | Path) -> list[str]:
    """Names of the entries (sub-folders holding a config.json) in a repository, sorted."""
    repo = Path(repo)
    if not repo.is_dir():
        raise UserError(f"{repo}: model repository folder not found")
    return sorted(p.name for p in repo.iterdir()
                  if p.is_dir() and MODEL_NAME_RE.fullmatch(p.name) and (p / CONFIG_FILE).is_file())
