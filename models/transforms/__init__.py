"""Preprocessing transforms on batched ``[N, C, H, W]`` tensors in ``[0, 1]``, params-then-apply.

* ``RandomTransform`` (``base``): the one shape every transform has; ``register_transform``,
  ``build_transform(spec)``, ``list_transforms()`` (``registry``).
* ``csrp`` / ``CSRP``: the seed paper's Algorithm 1 (Certain Scale with Random Padding).
* ``rdg`` / ``RDG``: random distortion over grids (Qiu et al., IEEE Trans. Computers 2021).

Parameters are drawn on the CPU from a ``torch.Generator`` and applied deterministically, so a
run replays from its saved params or its seed, on any device. Every module in this package is
imported here, so a new transform is one new file with a ``@register_transform`` class.
"""

import importlib as _importlib
import pkgutil as _pkgutil

from models.transforms.base import REQUIRED, Option, RandomTransform
from models.transforms.csrp import (
    CSRP,
    PAPER_SETTINGS,
    compile_enabled,
    csrp,
    csrp_geometry,
    draw_offsets,
)
from models.transforms.rdg import RDG, draw_rdg_params, rdg
from models.transforms.registry import (
    TRANSFORMS,
    build_transform,
    describe,
    list_transforms,
    parse_spec_text,
    register_transform,
    transform_class,
    unregister_transform,
)

for _module in _pkgutil.iter_modules(__path__):
    _importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "CSRP",
    "PAPER_SETTINGS",
    "RDG",
    "REQUIRED",
    "TRANSFORMS",
    "Option",
    "RandomTransform",
    "build_transform",
    "compile_enabled",
    "csrp",
    "csrp_geometry",
    "describe",
    "draw_offsets",
    "draw_rdg_params",
    "list_transforms",
    "parse_spec_text",
    "rdg",
    "register_transform",
    "transform_class",
    "unregister_transform",
]
