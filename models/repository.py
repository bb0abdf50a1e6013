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
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from models.architectures import Classifier, Normalize, create_model
from models.atomic import atomic_dir, write_json
from models.config import (
    CONFIG_FILE,
    MODEL_NAME_RE,
    ONNX_FILE,
    WEIGHTS_FILE,
    Entry,
    Lineage,
    ModelConfig,
    as_entry,
    entry_dir,
    list_entries,
    load_config,
    validate_model_name,
)
from models.errors import UserError
from models.files import PICKLE_MAGIC

__all__ = [
    "CONFIG_FILE",
    "MODEL_NAME_RE",
    "ONNX_FILE",
    "WEIGHTS_FILE",
    "Entry",
    "Lineage",
    "ModelConfig",
    "as_entry",
    "build_classifier",
    "entry_dir",
    "list_entries",
    "load_config",
    "load_model",
    "load_state_dict",
    "refuse_pickles",
    "save_entry",
    "validate_model_name",
]

def build_classifier(config: ModelConfig) -> Classifier:
    """An untrained ``Normalize + architecture`` module for ``config`` (eval mode)."""
    channels, height, _ = config.input_shape
    net = create_model(config.arch, config.num_classes, channels, height)
    return Classifier(Normalize(config.mean, config.std), net).eval()


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
    if head.startswith(PICKLE_MAGIC):
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


