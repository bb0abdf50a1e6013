"""The torch-free half of the model repository format (docs/design.md 3.2): entry names, the
``config.json`` schema, and reading entries. Nothing here imports torch, so command-line help
and the edge server stay fast and light; weights live in ``models.repository``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.errors import UserError
from models.provenance import code_version, utc_now

#: Every served entry has this one version (the repository keeps one version of a model).
MODEL_VERSION = "1"
#: Bounds of an entry's input: channels, and pixels on a side (a config asking for 100000 x
#: 100000 images made the server's warm-up allocate 37 GiB).
MAX_CHANNELS, MAX_SIDE = 4, 4096
MODEL_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")  # used with fullmatch
CONFIG_FILE, WEIGHTS_FILE, ONNX_FILE = "config.json", "model.safetensors", "model.onnx"
DETECTOR_FILE = "detector.safetensors"
#: The names of an entry graph's one input and one output (model.onnx).
INPUT_NAME, OUTPUT_NAME = "input", "logits"


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


class DetectorConfig(BaseModel):
    """A query detector served after the model (``models.detector``; its fitted statistics are
    the entry's ``detector.safetensors``): flagged queries get the runner-up label."""

    model_config = ConfigDict(extra="forbid")
    name: Literal["mahalanobis"] = "mahalanobis"
    fpr: float = Field(gt=0, lt=1)
    answer: Literal["runner-up"] = "runner-up"


class ModelConfig(BaseModel):
    """``config.json`` of a repository entry."""

    model_config = ConfigDict(extra="forbid")
    name: str
    arch: str
    dataset: str
    num_classes: int = Field(ge=2, le=100_000)
    input_shape: list[int] = Field(min_length=3, max_length=3)
    labels: list[str]
    mean: list[float]
    std: list[float]
    preprocessing: dict[str, Any] | None = None
    detector: DetectorConfig | None = None
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
        try:
            from models.transforms import build_transform
        except ImportError:  # a torch-free install (the edge server) checks the spec itself
            return value
        build_transform(value)  # raises ValueError naming the bad key and its range
        return value

    @field_validator("input_shape")
    @classmethod
    def _shape(cls, value: list[int]) -> list[int]:
        c, h, w = value
        if not (1 <= c <= MAX_CHANNELS and 1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
            raise ValueError(f"input_shape must be [C, H, W] with C in 1..{MAX_CHANNELS} and "
                             f"H, W in 1..{MAX_SIDE}; got {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        channels = self.input_shape[0]
        if len(self.mean) != channels or len(self.std) != channels:
            raise ValueError(f"mean and std need one value per channel ({channels})")
        if len(self.labels) not in (0, self.num_classes):
            raise ValueError(f"labels name {len(self.labels)} classes, num_classes is "
                             f"{self.num_classes}")
        return self


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
