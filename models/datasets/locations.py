"""Where datasets are looked for, in order, and the one error raised when none has them."""

from __future__ import annotations

import os
from pathlib import Path

from models.errors import UserError


def cache_dir() -> Path:
    """Writable cache (``CSRP_CACHE_DIR`` or ``~/.cache/csrp-testbed``)."""
    return Path(os.environ.get("CSRP_CACHE_DIR", Path.home() / ".cache" / "csrp-testbed"))


DATA_DIR_ENV = "CSRP_DATA_DIR"


def user_data_dir() -> Path | None:
    """``$CSRP_DATA_DIR``, when set."""
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def candidate_roots(root: Path | None, folder: str) -> list[Path]:
    """``root`` if given; else, with ``$CSRP_DATA_DIR`` set, that folder and its ``<folder>``
    sub-folder and nothing else (an explicit setting must not silently fall back to another
    copy); else ``./data/<folder>`` and the cache."""
    if root is not None:
        return [root]
    if (env := user_data_dir()) is not None:
        return [env, env / folder]
    return [Path("data") / folder, cache_dir() / folder]


def missing(name: str, looked: list[Path], how: str) -> UserError:
    places = ", ".join(str(p) for p in looked)
    return UserError(f"dataset {name!r} not found (looked in: {places}); {how}")
