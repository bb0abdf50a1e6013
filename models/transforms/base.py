"""The one shape of every random preprocessing transform (kornia-style params-then-apply).

A transform is an ``nn.Module`` subclass of :class:`RandomTransform` that declares its options
and implements two methods:

* ``generate_params(batch_shape, generator) -> dict[str, Tensor]``: draw every random parameter
  of a batch of shape ``[N, C, H, W]`` on the CPU from a ``torch.Generator`` (so a seed gives the
  same draw on every device);
* ``apply_params(images, params) -> Tensor``: apply them deterministically.

The base class owns everything else: ``forward(images, generator=None, params=None)`` (check
the input, draw unless ``params`` are given, apply), ``spec()`` (the config.json preprocessing
spec that rebuilds the transform), ``extra_repr``, and the input checks.
``check_fits(input_shape)`` says whether the transform can work on ``[C, H, W]`` images
(default: any); a transform with a size limit overrides it.
``set_kernel(name)`` lets callers ask for a cheaper kernel where a transform has several (CSRP);
the default ignores it. Any run replays exactly from its saved params or its seed.

Two class-level facts serve the studies that compare fronts (``fronts``, ``stability``):
``randomized`` says whether the same input can get different outputs (a deterministic front such
as median smoothing draws nothing; ``probe`` cannot see it and ``verify --adaptive`` treats its
suspect as deterministic), and ``strength_spec(s)`` maps a strength ``s`` in ``[0, 1]`` to a spec
whose clean accuracy does not rise with ``s`` (``None``: the transform has no such knob), so one
search matches any transform's accuracy to CSRP's. A transform that draws nothing subclasses
:class:`DeterministicTransform` and implements ``transform(images)`` alone.

Register a transform with ``@register_transform("name")`` (``models.transforms.registry``);
dropping the file into ``models/transforms/`` is all it takes, the package imports every module
in it.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

__all__ = ["REQUIRED", "DeterministicTransform", "Option", "RandomTransform",
           "check_generator", "check_images"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: Marks an option without a default.
REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Option:
    """One option of a transform: its name (a spec key), type, meaning and default.

    ``kind`` is ``int`` or ``float``. ``help`` states the valid range (it appears in command-line
    help and in error messages); the transform's ``__init__`` enforces it.
    """

    name: str
    kind: type
    help: str
    default: Any = REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def flag(self) -> str:
        """The command-line flag of this option, e.g. ``--distort-limit``."""
        return "--" + self.name.replace("_", "-")

    def coerce(self, value: Any) -> Any:
        """``value`` as a float for a float option when it is an int (``1`` -> ``1.0``);
        anything else is returned unchanged for the transform to check (so ``p = 3.0``, a float
        where an integer belongs, is refused rather than silently rounded)."""
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value


def check_images(images: object) -> Tensor:
    """``images`` unless it is not a floating-point ``[N, C, H, W]`` tensor (``ValueError``)."""
    if not isinstance(images, Tensor):
        raise ValueError(f"images must be a torch.Tensor [N, C, H, W]; got {type(images).__name__}")
    if not images.is_floating_point():
        raise ValueError(
            f"images must be a floating-point tensor with values in [0, 1]; got {images.dtype}"
        )
    if images.dim() != 4:
        raise ValueError(f"images must have rank 4 [N, C, H, W]; got shape {tuple(images.shape)}")
    return images


def check_generator(generator: torch.Generator | None) -> None:
    """``ValueError`` unless ``generator`` is ``None`` or a CPU ``torch.Generator``."""
    if generator is not None and (
        not isinstance(generator, torch.Generator) or generator.device.type != "cpu"
    ):
        raise ValueError(
            "generator must be a CPU torch.Generator (parameters are drawn on the CPU so that a "
            f"seed gives the same draw on every device); got {generator!r}"
        )


def check_batch_shape(batch_shape: Sequence[int]) -> tuple[int, int, int, int]:
    """``batch_shape`` as ``(N, C, H, W)``; ``ValueError`` unless it is four sizes >= 0."""
    shape = tuple(int(s) for s in batch_shape)
    if len(shape) != 4 or any(s < 0 for s in shape):
        raise ValueError(f"batch_shape must be [N, C, H, W] with sizes >= 0; got {batch_shape!r}")
    return shape  # type: ignore[return-value]


class RandomTransform(nn.Module, metaclass=ABCMeta):
    """Base of every registered transform: options, forward, spec and checks live here.

    Subclasses set ``name`` (through ``@register_transform``) and ``options``, store each option
    as an attribute of the same name in ``__init__``, and implement ``generate_params`` and
    ``apply_params`` (enforced: a subclass without them cannot be instantiated).
    """

    name: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    #: whether the same input can get different outputs (see the module doc)
    randomized: ClassVar[bool] = True

    @classmethod
    def strength_spec(cls, strength: float) -> dict[str, Any] | None:
        """The spec at ``strength`` in ``[0, 1]`` (0 mildest; accuracy non-increasing in it),
        or ``None`` when the transform has no single knob (default)."""
        return None

    @abstractmethod
    def generate_params(self, batch_shape: Sequence[int],
                        generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Every random parameter of a batch of shape ``[N, C, H, W]``, drawn on the CPU."""

    @abstractmethod
    def apply_params(self, images: Tensor, params: dict[str, Tensor]) -> Tensor:
        """The transform with the given ``params`` (deterministic)."""

    def forward(self, images: Tensor, generator: torch.Generator | None = None,
                params: dict[str, Tensor] | None = None) -> Tensor:
        """Apply ``params`` when given (a replay, kornia's convention), else draw fresh
        per-sample parameters from ``generator`` and apply them."""
        images = check_images(images)
        if params is None:
            check_generator(generator)
            params = self.generate_params(images.shape, generator)
        elif generator is not None:
            raise ValueError("give params (a replay) or a generator (a fresh draw), not both")
        return self.apply_params(images, params)

    def check_fits(self, input_shape: Sequence[int]) -> None:
        """``ValueError`` when images of ``[C, H, W]`` cannot go through this transform."""

    def set_kernel(self, kernel: str) -> None:
        """Ask for a kernel (e.g. ``"eager"``) where the transform has several; default: none."""

    def spec(self) -> dict[str, Any]:
        """The config.json preprocessing spec that rebuilds this transform."""
        return {"name": self.name, **{o.name: getattr(self, o.name) for o in self.options}}

    def extra_repr(self) -> str:
        return ", ".join(f"{o.name}={getattr(self, o.name)!r}" for o in self.options)


class DeterministicTransform(RandomTransform):
    """Base of a transform that draws nothing (median smoothing, bit-depth reduction): its
    params are ``{}`` and ``transform(images)`` is what subclasses implement."""

    randomized: ClassVar[bool] = False

    @abstractmethod
    def transform(self, images: Tensor) -> Tensor:
        """The deterministic output for checked ``images``."""

    def generate_params(self, batch_shape: Sequence[int],
                        generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Nothing to draw: ``{}``."""
        check_batch_shape(batch_shape)
        return {}

    def apply_params(self, images: Tensor, params: dict[str, Tensor]) -> Tensor:
        """``transform(images)``; ``params`` must be ``{}``."""
        images = check_images(images)
        if not isinstance(params, dict) or params:
            raise ValueError(f"{self.name} takes no params: give {{}}")
        return self.transform(images)
