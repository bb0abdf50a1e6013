"""Preprocessing transforms on batched ``[N, C, H, W]`` tensors in ``[0, 1]``, params-then-apply.

* ``csrp`` / ``CSRP``: the seed paper's Algorithm 1 (Certain Scale with Random Padding).
* ``rdg`` / ``RDG``: random distortion over grids (Qiu et al., IEEE Trans. Computers 2021).
* ``build_transform(spec)`` / ``describe(module)``: config.json spec <-> module.

Parameters are drawn on the CPU from a ``torch.Generator`` and applied deterministically, so a
run replays from its saved params or its seed, on any device.
"""

from models.transforms.csrp import (
    CSRP,
    PAPER_SETTINGS,
    compile_enabled,
    csrp,
    csrp_geometry,
    draw_offsets,
)
from models.transforms.factory import TRANSFORMS, build_transform, describe
from models.transforms.rdg import RDG, draw_rdg_params, rdg

__all__ = [
    "CSRP",
    "PAPER_SETTINGS",
    "RDG",
    "TRANSFORMS",
    "build_transform",
    "compile_enabled",
    "csrp",
    "csrp_geometry",
    "describe",
    "draw_offsets",
    "draw_rdg_params",
    "rdg",
]
