"""The transform registry: ``@register_transform``, ``build_transform(spec)``, ``list_transforms``.

A preprocessing spec is what a model's config.json stores (``None`` means no preprocessing)::

    None
    {"name": "csrp", "sigma": 1.16, "p": 3}
    {"name": "rdg", "distort_limit": 0.25, "num_cells": 10}   # options with defaults optional

Every transform owns its options (names, types, defaults, help) and its checks, so this module
holds no transform names: the server (preprocessing before the backend), the pirate's tools and
the verifier (simulating the pirate) all build through :func:`build_transform`, and a spec means
the same thing everywhere. On the command line a spec can also be written as text,
``csrp(sigma=1.23, p=6)`` (:func:`parse_spec_text`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from models.registry import Registry
from models.transforms.base import Option, RandomTransform

__all__ = [
    "build_transform",
    "describe",
    "list_transforms",
    "parse_spec_text",
    "register_transform",
    "transform_class",
    "unregister_transform",
]

TRANSFORMS: Registry[type[RandomTransform]] = Registry("transform")
T = TypeVar("T", bound=type[RandomTransform])
_NAME = re.compile(r"[a-z][a-z0-9_-]*")


def register_transform(name: str) -> Callable[[T], T]:
    """Class decorator: register a :class:`RandomTransform` subclass under ``name``."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"transform name must match {_NAME.pattern}; got {name!r}")

    def decorator(cls: T) -> T:
        if not issubclass(cls, RandomTransform):
            raise TypeError(f"{cls.__name__} must subclass models.transforms.RandomTransform")
        return TRANSFORMS.register(name)(cls)

    return decorator


def unregister_transform(name: str) -> None:
    """Forget ``name`` (for tests that register a transform of their own)."""
    TRANSFORMS.unregister(name)


def list_transforms() -> list[str]:
    """Registered transform names, sorted."""
    return TRANSFORMS.names()


def transform_class(name: object) -> type[RandomTransform]:
    """The class registered as ``name``; ``ValueError`` naming the choices otherwise."""
    if not isinstance(name, str) or name not in TRANSFORMS:
        raise ValueError(f"preprocessing name must be one of {', '.join(list_transforms())}; "
                         f"got {name!r}")
    return TRANSFORMS.get(name)


def options_of(name: str) -> tuple[Option, ...]:
    return transform_class(name).options


def build_transform(spec: Mapping[str, object] | None) -> RandomTransform | None:
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
    cls = transform_class(spec.get("name"))
    options = {o.name: o for o in cls.options}
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    missing = [o.name for o in cls.options if o.required and o.name not in kwargs]
    if missing:
        raise ValueError(f"preprocessing {cls.name!r} needs key(s) {', '.join(missing)}")
    unknown = sorted(k for k in kwargs if k not in options)
    if unknown:
        raise ValueError(
            f"preprocessing {cls.name!r} got unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(options))}"
        )
    return cls(**{k: options[k].coerce(v) for k, v in kwargs.items()})


def describe(transform: object) -> dict[str, object] | None:
    """The spec of a transform built by ``build_transform`` (``None`` for ``None``)."""
    if transform is None:
        return None
    spec = getattr(transform, "spec", None)
    if not callable(spec):
        raise ValueError(f"{type(transform).__name__} is not a preprocessing transform")
    return spec()


_SPEC_TEXT = re.compile(r"\s*([a-z][a-z0-9_-]*)\s*(?:\((.*)\))?\s*", re.DOTALL)
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _number(text: str, where: str) -> int | float:
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"{where}: {text!r} is not a number")
    return int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)


def parse_spec_text(text: str, *, ranges: bool = False) -> dict[str, Any]:
    """``"csrp(sigma=1.23, p=6)"`` -> ``{"name": "csrp", "sigma": 1.23, "p": 6}``.

    With ``ranges`` a value may be ``low..high`` (kept as a ``(low, high)`` tuple), as a
    transform family writes it. ``ValueError`` with the reason for anything else.
    """
    match = _SPEC_TEXT.fullmatch(text or "")
    if not match:
        raise ValueError(f"transform spec {text!r} is not of the form name(key=value, ...)")
    name, body = match.group(1), match.group(2)
    spec: dict[str, Any] = {"name": name}
    for item in filter(None, (part.strip() for part in (body or "").split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[a-z][a-z0-9_]*", key):
            raise ValueError(f"transform spec {text!r}: {item!r} is not key=value")
        if key in spec:
            raise ValueError(f"transform spec {text!r}: {key!r} is given twice")
        where = f"transform spec {text!r}, {key}"
        if ".." in value:
            if not ranges:
                raise ValueError(f"{where}: a range ({value.strip()}) needs a transform family")
            low, _, high = value.partition("..")
            spec[key] = (_number(low, where), _number(high, where))
        else:
            spec[key] = _number(value, where)
    return spec
