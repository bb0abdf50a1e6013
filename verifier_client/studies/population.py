"""Matching outcomes of a population of suspects: which fingerprint each model matched, per repeat.

For every entry named and every fingerprint set: a bool matrix ``[repeats, N]``. In-process
(default) each entry runs behind its own preprocessing, as the server would apply it
(``matching.match_outcomes``, seeded); a deterministic entry (no preprocessing) is measured
once and its row repeated. ``via_server`` queries a real ``python -m server`` on 127.0.0.1
instead (fresh server-side draws per query; failed queries are retried, and a model with a
repeat that never succeeds is an error rather than a silent gap).

The outcomes are the raw material of every population study (``roc``, the verdict validation):
matching rates at any budget are means over a subset of fingerprints and repeats.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from models.errors import UserError
from models.repository import Entry
from verifier_client.fingerprint_set import FingerprintSet

Outcomes = dict[str, dict[str, np.ndarray]]  # model -> method -> bool [repeats, N]


def local_outcomes(entry: Entry, sets: Sequence[FingerprintSet], repeats: int,
                   seed: int = 0, votes: int = 1,
                   front: dict | None = None) -> dict[str, np.ndarray]:
    """``method -> bool [repeats, N]`` for one entry, in-process behind its preprocessing, or
    behind ``front`` (a transform spec) instead when given (with ``votes`` K, each repeat
    scores the modal label of K queries), and behind its query detector if it has one. A
    deterministic path is measured once and its row repeated."""
    from models.runtime import load_served_predictor
    from models.transforms import build_transform
    from verifier_client.matching import match_outcomes

    try:
        transform = build_transform(front if front is not None else entry.config.preprocessing)
        if transform is not None:
            transform.check_fits(entry.config.input_shape)
    except ValueError as error:
        raise UserError(f"{entry.path}: preprocessing {error}") from None
    predictor = load_served_predictor(entry)
    found = {}
    for fset in sets:
        if list(fset.images.shape[1:]) != list(entry.config.input_shape):
            raise UserError(f"{fset.name}: images are {list(fset.images.shape[1:])} [C, H, W] "
                            f"but {entry.name} takes {entry.config.input_shape}")
        if transform is None or not transform.randomized:
            once = match_outcomes(predictor, fset, transform, 1, seed).numpy()
            found[fset.method] = np.repeat(once, repeats, axis=0)
        else:
            found[fset.method] = match_outcomes(predictor, fset, transform, repeats, seed,
                                                votes).numpy()
    return found


async def _remote(url: str, names: Sequence[str], sets: Sequence[FingerprintSet],
                  repeats: int, on_model: Callable[[str], None], votes: int = 1) -> Outcomes:
    from verifier_client.oip_client import OIPClient
    from verifier_client.votes import set_outcomes

    found: Outcomes = {}
    async with OIPClient(url, concurrency=8) as client:
        await client.check_ready()
        for name in names:
            meta = await client.model_metadata(name)
            prepared = [client.prepare(meta, s.queries, s.num_classes) for s in sets]
            results = await client.repeat(prepared, repeats * votes)
            found[name] = {}
            for fset, result in zip(sets, results, strict=True):
                if result.failures:
                    raise UserError(f"{name}: {len(result.failures)} of {repeats} queries for "
                                    f"{fset.name} failed ({result.failures[-1]})")
                found[name][fset.method] = set_outcomes(fset, result.answers, votes)
            on_model(name)
    return found


def measure(zoo: Path, names: Sequence[str], sets: Sequence[FingerprintSet], repeats: int,
            *, seed: int = 0, via_server: bool = False, votes: int = 1,
            on_model: Callable[[str], None] | None = None) -> Outcomes:
    """Outcomes of every named entry of ``zoo`` on every set (see the module docstring)."""
    tick = on_model or (lambda name: None)
    if via_server:
        from models.local_server import LocalServer

        with LocalServer(zoo, "--models", ",".join(names), threads=2) as server:
            return asyncio.run(_remote(server.url, names, sets, repeats, tick, votes))
    found: Outcomes = {}
    for name in names:
        found[name] = local_outcomes(Entry.load(zoo / name), sets, repeats, seed, votes)
        tick(name)
    return found


def save_outcomes(path: Path, outcomes: Outcomes) -> None:
    """All matrices in one compressed ``.npz`` (keys ``model/method``), written atomically."""
    import io

    from models.atomic import write_bytes

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{f"{m}/{k}": v for m, row in outcomes.items()
                                   for k, v in row.items()})
    write_bytes(path, buffer.getvalue())


def load_outcomes(path: Path) -> Outcomes:
    """Read a file written by :func:`save_outcomes` (bool arrays only; pickles refused)."""
    if not path.is_file():
        raise UserError(f"{path}: outcomes file not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            found: Outcomes = {}
            for key in archive.files:
                model, _, method = key.partition("/")
                array = archive[key]
                if array.dtype != np.bool_ or array.ndim != 2:
                    raise UserError(f"{path}: {key} is not a bool [repeats, N] matrix")
                found.setdefault(model, {})[method] = array
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: not a readable outcomes file ({error})") from None
    return found
