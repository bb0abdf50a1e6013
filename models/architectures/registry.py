"""Architecture registry in the style of timm: ``@register_model`` + ``create_model``.

Adding an architecture is adding one file in this package that decorates a factory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from torch import nn

from models.errors import UserError
from models.registry import Registry


class ModelFactory(Protocol):
    def __call__(self, num_classes: int, in_channels: int, image_size: int) -> nn.Module: ...


ARCHITECTURES: Registry[ModelFactory] = Registry("architecture")


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Register ``factory(num_classes, in_channels, image_size) -> nn.Module`` under ``name``."""
    return ARCHITECTURES.register(name)


def list_models(pattern: str = "*") -> list[str]:
    """Registered architecture names matching a shell-style ``pattern``, sorted."""
    return ARCHITECTURES.names(pattern)


def create_model(
    name: str, num_classes: int = 10, in_channels: int = 3, image_size: int = 32
) -> nn.Module:
    """Build architecture ``name`` (no normalisation layer; see ``build_classifier``)."""
    factory = ARCHITECTURES.lookup(name)
    if num_classes < 2 or in_channels < 1 or image_size < 8:
        raise UserError(
            f"bad model shape: num_classes={num_classes} (>=2), in_channels={in_channels} (>=1), "
            f"image_size={image_size} (>=8)"
        )
    return factory(num_classes=num_classes, in_channels=in_channels, image_size=image_size)
