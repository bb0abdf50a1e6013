"""``build_transform(spec)``: a model's config.json preprocessing spec -> transform module.

Specs (all keys shown; ``None`` means no preprocessing)::

    None
    {"name": "csrp", "sigma": 1.16, "p": 3}
    {"name": "rdg", "distort_limit": 0.25, "num_cells": 10}   # both keys optional

The server (preprocessing before the backend) and the verifier (simulating the pirate) both build
their transform here, so a spec means the same thing on both sides. Every module returned has
``forward(images, generator=None)`` (fresh per-sample parameters), ``generate_params`` /
``apply`` for replay, and ``spec()`` giving the spec back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from torch import nn

from models.transforms.csrp import CSRP
from models.transforms.rdg import RDG

__all__ = ["TRANSFORMS", "build_transform", "describe"]


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., nn.Module]
    required: tuple[str, ...]
    optional: tuple[str, ...]


#: Transform names accepted in a spec, with their required and optional keys.
TRANSFORMS: dict[str, _Entry] = {
    "csrp": _Entry(CSRP, required=("sigma", "p"), optional=()),
    "rdg": _Entry(RDG, required=(), optional=("distort_limit", "num_cells")),
}


def build_transform(spec: Mapping[str, object] | None) -> nn.Module | None:
    """Build the transform a preprocessing ``spec`` names; ``None`` for ``None``.

    Raises:
        ValueError: the spec is not a dict, has no/unknown ``name``, misses a required key, has
            an unknown key, or a value out of range (the message names the key and the range).
    """
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise ValueError(
            f"preprocessing spec must be null or an object with a 'name'; got {spec!r}"
        )
    name = spec.get("name")
    if not isinstance(name, str) or name not in TRANSFORMS:
        raise ValueError(
            f"preprocessing name must be one of {', '.join(sorted(TRANSFORMS))}; got {name!r}"
        )
    entry = TRANSFORMS[name]
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    missing = [k for k in entry.required if k not in kwargs]
    if missing:
        raise ValueError(f"preprocessing {name!r} needs key(s) {', '.join(missing)}")
    allowed = set(entry.required) | set(entry.optional)
    unknown = sorted(k for k in kwargs if k not in allowed)
    if unknown:
        raise ValueError(
            f"preprocessing {name!r} got unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    return entry.factory(**kwargs)


def describe(transform: nn.Module | None) -> dict[str, object] | None:
    """The spec of a transform built by ``build_transform`` (``None`` for ``None``)."""
    if transform is None:
        return None
    spec = getattr(transform, "spec", None)
    if not callable(spec):
        raise ValueError(f"{type(transform).__name__} is not a preprocessing transform")
    return spec()
