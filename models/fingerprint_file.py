"""The fingerprint set file format at the byte level (docs/design.md 3.4), shared by the owner's
``verifier_client.fingerprint_set`` (which validates the samples and knows how to score them)
and the pirate's tools in ``models`` (``tune_defence``), so the file is parsed in one place.

One safetensors file, never a pickle (read as NumPy arrays: no torch needed): tensors
``images``, ``labels`` and optional ``sources``;
the header's ``__metadata__`` holds ``format`` = ``csrp-fingerprint-set``, ``format_version`` =
``1`` and ``metadata``, a JSON object with at least ``REQUIRED_METADATA``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors

from models.errors import UserError
from models.files import PICKLE_MAGIC

FORMAT, FORMAT_VERSION = "csrp-fingerprint-set", "1"
REQUIRED_METADATA = ("method", "parameters", "target", "seed", "code_version",
                     "candidates_tried", "created")
TENSORS = ("images", "labels", "sources")
#: A set file larger than this is refused unread (100 samples of 3x64x64 take 5 MB).
MAX_FILE_BYTES = 512 * 1024 * 1024

_MAX_HEADER = 100 * 1024 * 1024


def encode(tensors: dict[str, np.ndarray], metadata: dict[str, Any]) -> bytes:
    """The file's bytes (``ValueError``/``TypeError`` for metadata that is not JSON)."""
    header = {"format": FORMAT, "format_version": FORMAT_VERSION,
              "metadata": json.dumps(metadata, sort_keys=True, allow_nan=False)}
    return save_tensors(tensors, metadata=header)


def decode(data: bytes, where: str = "<bytes>") -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(metadata, tensors)`` of a set file's bytes; any problem is one ``UserError`` line."""
    def bad(why: str) -> UserError:
        return UserError(f"{where}: not a valid fingerprint set file ({why})")

    def not_safetensors(why: str) -> UserError:
        # A safetensors file starts with its header length (u64 LE), which may well begin with
        # 0x80; only a file that is *not* safetensors is named a pickle.
        if data.startswith(PICKLE_MAGIC):
            return bad("looks like a pickle/torch.save file; refusing to unpickle it")
        return bad(why)

    if len(data) < 8:
        raise not_safetensors(f"truncated: {len(data)} bytes")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > _MAX_HEADER or 8 + header_len > len(data):
        raise not_safetensors("truncated or corrupt safetensors header")
    try:
        header = json.loads(data[8:8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise not_safetensors("corrupt safetensors header") from None
    extra = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(extra, dict) or extra.get("format") != FORMAT:
        raise bad(f"no {FORMAT!r} header; not written by this tool")
    if extra.get("format_version") != FORMAT_VERSION:
        raise bad(f"unsupported format version {extra.get('format_version')!r}")
    try:
        metadata = json.loads(extra.get("metadata", ""))
    except (json.JSONDecodeError, RecursionError):
        raise bad("metadata is not valid JSON") from None
    if not isinstance(metadata, dict):
        raise bad("metadata is not a JSON object")
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise bad(f"metadata lacks {', '.join(missing)}")
    try:
        tensors = load_tensors(data)
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise bad(f"corrupt tensor data: {error}") from None
    for name in ("images", "labels"):
        if name not in tensors:
            raise bad(f"tensor {name!r} missing")
    unknown = set(tensors) - set(TENSORS)
    if unknown:
        raise bad(f"unexpected tensors {sorted(unknown)}")
    return metadata, tensors


def read(path: str | Path) -> tuple[bytes, dict[str, Any], dict[str, np.ndarray]]:
    """``(bytes, metadata, tensors)`` of a set file: a regular file of sane size, decoded."""
    from models.files import read_regular_file

    data = read_regular_file(path, MAX_FILE_BYTES, "fingerprint set file")
    metadata, tensors = decode(data, str(path))
    return data, metadata, tensors
