"""Where datasets are looked for, in order, and the one error raised when none has them."""

from __future__ import annotations

import os
from pathlib import Path

from models.errors import UserError


def cache_dir() -> Path:
    """Writable cache (``CSRP_CACHE_DIR`` or ``~/.cache/csrp-testbed``)."""
    return Path(os.environ.get("CSRP_CACHE_DIR", Path.home() / ".cache" / "csrp-testbed"))


def candidate_roots(root: Path | None, folder: str) -> list[Path]:
    """``root`` if given; else ``$CSRP_DATA_DIR/<folder>``, ``./data/<folder>``, the cache."""
    if root is not None:
        return [root]
    roots = []
    if env := os.environ.get("CSRP_DATA_DIR"):
        roots.append(Path(env) / folder)
    roots += [Path("data") / folder, cache_dir() / folder]
    return roots


def missing(name: str, looked: list[Path], how: str) -> UserError:
    places = ", ".join(str(p) for p in looked)
    return UserError(f"dataset {name!r} not found (looked in: {places}); {how}")
