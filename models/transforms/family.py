"""Transform families: the randomized fronts an owner can assume without knowing the pirate's
setting, for Expectation over Transformation (Athalye, Carlini, Wagner, ICML 2018).

A family is written as one or more registered transforms with an option range or a value each,
joined by ``+`` (an equal-weight mixture)::

    csrp(sigma=1.1..1.3, p=2..8)
    csrp(sigma=1.16..1.4, p=1..8) + rdg(distort_limit=0.1..0.4)

Every draw picks a member uniformly, then each ranged option uniformly in its range (integers
for integer options, both ends included), builds that transform, and applies it with fresh
per-sample randomness. Options left out take the transform's defaults; a required option must
be given. ``views(images, k, generator)`` stacks ``k`` such draws of the whole batch,
``[k * N, C, H, W]`` (draw-major), differentiable in the pixels; every random choice comes from
the CPU generator, so a seed replays the views exactly.

Bad specs raise ``ValueError`` naming the problem: a malformed spec, an unknown transform or
option, an empty range (low > high), a range end outside the transform's valid values, or a
setting that cannot take the input size (``check(input_shape)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from models.transforms.base import RandomTransform
from models.transforms.registry import parse_spec_text, transform_class

__all__ = ["FamilyMember", "TransformFamily", "parse_family"]


@dataclass(frozen=True)
class FamilyMember:
    """One transform of a family: fixed options and ``(low, high)`` ranges."""

    name: str
    fixed: dict[str, Any]
    ranges: dict[str, tuple[float, float]]

    def text(self) -> str:
        parts = [f"{k}={v}" for k, v in self.fixed.items()]
        parts += [f"{k}={low}..{high}" for k, (low, high) in self.ranges.items()]
        return f"{self.name}({', '.join(parts)})"

    def corners(self) -> list[dict[str, Any]]:
        """The option settings at every combination of range ends (to check validity)."""
        settings = [dict(self.fixed)]
        for key, (low, high) in self.ranges.items():
            settings = [{**s, key: value} for s in settings for value in (low, high)]
        return settings

    def draw(self, generator: torch.Generator) -> dict[str, Any]:
        """One setting: each ranged option uniform in its range."""
        options = {o.name: o for o in transform_class(self.name).options}
        setting = dict(self.fixed)
        for key, (low, high) in self.ranges.items():
            u = float(torch.rand((), generator=generator, dtype=torch.float64))
            if options[key].kind is int:
                setting[key] = int(low) + min(int(u * (int(high) - int(low) + 1)),
                                              int(high) - int(low))
            else:
                setting[key] = float(low) + u * (float(high) - float(low))
        return setting


class TransformFamily:
    """A mixture of :class:`FamilyMember` s (see the module docstring)."""

    def __init__(self, members: Sequence[FamilyMember]) -> None:
        if not members:
            raise ValueError("a transform family needs at least one member")
        self.members = list(members)

    def spec_text(self) -> str:
        return " + ".join(member.text() for member in self.members)

    def describe(self) -> dict[str, Any]:
        return {"family": self.spec_text(),
                "members": [{"name": m.name, "fixed": m.fixed,
                             "ranges": {k: list(v) for k, v in m.ranges.items()}}
                            for m in self.members]}

    def check(self, input_shape: Sequence[int]) -> None:
        """``ValueError`` unless every corner setting builds and fits ``[C, H, W]`` images."""
        for member in self.members:
            cls = transform_class(member.name)
            for setting in member.corners():
                try:
                    cls(**setting).check_fits(input_shape)
                except (TypeError, ValueError) as error:
                    raise ValueError(f"{member.text()}: {error}") from None

    def draw(self, generator: torch.Generator) -> RandomTransform:
        """One transform of the family (member, then setting, from ``generator``)."""
        index = int(torch.randint(0, len(self.members), (), generator=generator))
        member = self.members[index]
        transform = transform_class(member.name)(**member.draw(generator))
        transform.set_kernel("eager")  # differentiable, no compile warm-up
        return transform

    def views(self, images: Tensor, k: int, generator: torch.Generator) -> Tensor:
        """``k`` independent draws of the whole batch, ``[k * N, C, H, W]``, draw-major."""
        if k < 1:
            raise ValueError(f"the number of draws must be >= 1; got {k}")
        return torch.cat([self.draw(generator)(images, generator) for _ in range(k)])


def _member(text: str) -> FamilyMember:
    spec = parse_spec_text(text, ranges=True)
    name = spec.pop("name")
    cls = transform_class(name)
    options = {o.name: o for o in cls.options}
    unknown = sorted(set(spec) - set(options))
    if unknown:
        raise ValueError(f"{name} has no option {', '.join(map(repr, unknown))}; its options: "
                         f"{', '.join(options) or 'none'}")
    fixed, ranges = {}, {}
    for key, value in spec.items():
        kind = options[key].kind
        if isinstance(value, tuple):
            low, high = value
            if kind is int and not all(isinstance(v, int) for v in value):
                raise ValueError(f"{name}: {key} takes integers; got {low}..{high}")
            if not (math.isfinite(low) and math.isfinite(high)) or low > high:
                raise ValueError(f"{name}: the range {key}={low}..{high} is empty")
            ranges[key] = (kind(low), kind(high))
        else:
            fixed[key] = float(value) if kind is float else value
    missing = [o.name for o in cls.options if o.required and o.name not in spec]
    if missing:
        raise ValueError(f"{name} needs {', '.join(missing)} (a value or a range)")
    return FamilyMember(name, fixed, ranges)


def parse_family(text: str) -> TransformFamily:
    """The family a spec text writes (see the module docstring); ``ValueError`` otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty transform family spec")
    parts = _split_members(text)
    try:
        return TransformFamily([_member(part) for part in parts])
    except ValueError as error:
        message = str(error)
        if message.startswith("preprocessing name must be one of"):
            message = message.replace("preprocessing name", "the transform")
        raise ValueError(f"--eot {text!r}: {message}") from None


def _split_members(text: str) -> list[str]:
    """Split on ``+`` outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "+" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    if any(not p.strip() for p in parts) or depth != 0:
        raise ValueError(f"--eot {text!r}: not of the form name(key=low..high, ...) [+ ...]")
    return [p.strip() for p in parts]
