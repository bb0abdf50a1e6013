"""Which backend serves an entry: the one asked for, or the config's, or the file that exists."""

from __future__ import annotations

from pathlib import Path

from models.config import ONNX_FILE, WEIGHTS_FILE, ModelConfig
from models.errors import UserError


def resolve_backend(path: Path, config: ModelConfig, requested: str) -> str:
    # messages name the entry's folder (what the operator sees), not the name inside config.json
    """``requested`` (onnx | torch) or, for ``auto``, the config's backend, falling back to the
    file that exists (an int8 entry has only model.onnx). Raises ``UserError`` when the
    requested backend's file is missing."""
    files = {"onnx": (path / ONNX_FILE).is_file(), "torch": (path / WEIGHTS_FILE).is_file()}
    if requested != "auto":
        if not files[requested]:
            missing = ONNX_FILE if requested == "onnx" else WEIGHTS_FILE
            raise UserError(f"model {path.name!r}: backend {requested!r} needs {missing}, "
                            "which the entry does not have")
        return requested
    if files[config.backend]:
        return config.backend
    for name, present in files.items():
        if present:
            return name
    raise UserError(f"model {path.name!r}: no {ONNX_FILE} or {WEIGHTS_FILE}")
