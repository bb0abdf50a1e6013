"""One small name -> object registry, the shape of every registry in the project (timm-style).

``Registry(kind)`` holds architectures (factories), transforms and fingerprinting methods
(classes). ``@registry.register("name")`` adds one (a class also gets ``cls.name = "name"``);
adding one is adding one decorated definition, in a file of its own.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Objects by name; ``kind`` names them in messages ("architecture", "transform", ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the object under ``name`` (twice is an error)."""

        def decorator(item: T) -> T:
            if name in self._items and self._items[name] is not item:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            if isinstance(item, type):
                item.name = name  # type: ignore[attr-defined]
            self._items[name] = item
            return item

        return decorator

    def unregister(self, name: str) -> None:
        """Forget ``name`` (for tests that register something of their own)."""
        self._items.pop(name, None)

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style ``pattern``, sorted."""
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def get(self, name: str) -> T:
        """The object registered as ``name``; ``KeyError`` when there is none."""
        return self._items[name]

    def check(self, name: object, what: str | None = None) -> str:
        """``name`` when it is registered, else one ``UserError`` line naming the choices:
        "unknown architecture 'x'; choose one of a, b" (the one wording every registry uses)."""
        if not isinstance(name, str) or name not in self._items:
            from models.errors import UserError

            raise UserError(f"unknown {what or self.kind} {name!r}; choose one of "
                            f"{', '.join(self.names())}")
        return name

    def lookup(self, name: object, what: str | None = None) -> T:
        """The object registered as ``name``, or :meth:`check`'s ``UserError``."""
        return self._items[self.check(name, what)]
