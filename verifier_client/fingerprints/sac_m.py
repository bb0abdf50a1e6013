"""SAC-m, label-only: CutMix samples, compared by the pairwise structure of the labels.

Jiyang Guan, Jian Liang, Ran He. "Are You Stealing My Model? Sample Correlation for
Fingerprinting Deep Neural Networks". NeurIPS 2022 (public code: guanjiyang/SAC; the label-only
variant is its ``cal_cor_onehot``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from models.errors import UserError
from verifier_client.fingerprints.base import (
    Candidates,
    FingerprintMethod,
    Run,
    randint,
    register_method,
    snap,
)


def cutmix(first: torch.Tensor, second: torch.Tensor, generator: torch.Generator,
           alpha: float) -> torch.Tensor:
    """Paste a random box of ``second`` into ``first`` (Yun et al., ICCV 2019): the box covers
    ``1 - lambda`` of the image, ``lambda ~ Beta(alpha, alpha)``, centred uniformly (clipped at
    the borders, as torchvision's ``CutMix``). Every draw comes from ``generator`` (torch has no
    seeded Beta sampler: lambda comes from a NumPy stream seeded by it), so a set replays."""
    n, _, h, w = first.shape
    seed = int(torch.randint(0, 2**31 - 1, (), generator=generator))
    lam = torch.from_numpy(np.random.default_rng(seed).beta(alpha, alpha, size=n))
    cut = torch.sqrt(1.0 - lam)
    bh, bw = (cut * h).round().long(), (cut * w).round().long()
    cy = torch.randint(0, h, (n,), generator=generator)
    cx = torch.randint(0, w, (n,), generator=generator)
    rows, cols = torch.arange(h)[None, :], torch.arange(w)[None, :]
    inside_y = (rows >= (cy - bh // 2)[:, None]) & (rows < (cy + (bh + 1) // 2)[:, None])
    inside_x = (cols >= (cx - bw // 2)[:, None]) & (cols < (cx + (bw + 1) // 2)[:, None])
    box = (inside_y[:, :, None] & inside_x[:, None, :])[:, None].to(first.device)
    return torch.where(box, second, first)


@register_method("sac-m")
class SACm(FingerprintMethod):
    r"""SAC-m in its label-only form (Guan, Liang, He, NeurIPS 2022).

    Each sample is a CutMix of two of the owner's test images (a box of the second pasted into
    the first, its area ``1 - lambda`` with ``lambda ~ Beta(alpha, alpha)``); it is labelled by
    the target (and accepted with the common margin on its 8-bit image). Verification does not
    score the labels one by one: it compares, for every pair of samples, whether the suspect
    puts them in one class or two with what the target does (the ``label-pairs``
    representation, SAC's correlation distance on one-hot outputs). A model that learned from
    the target's labels tends to split these out-of-distribution mixtures the way the target
    does.

    Arguments:
        alpha (float): CutMix's Beta parameter. Default: 1.0 (SAC's and torchvision's).
        plus the common ``margin``, ``max_rounds``, ``max_batch`` (see ``FingerprintMethod``).

    Shapes: seeds float [M, C, H, W] in [0, 1]; samples float [N, C, H, W] on the 8-bit grid.
    """

    representation = "label-pairs"
    uses_seeds = True
    expected_acceptance = 0.9

    def __init__(self, *, alpha: float = 1.0, **common: Any) -> None:
        self.alpha = float(alpha)
        super().__init__(**common)

    def _check_params(self) -> None:
        if not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise UserError(f"sac-m: alpha must be a finite number > 0, got {self.alpha}")
        if self.family is not None:
            raise UserError("sac-m: CutMix samples are not optimised; --eot does not apply")

    def candidates(self, run: Run, count: int) -> Candidates:
        first, _, sources = run.next_seeds(count)
        partner = randint(len(run.seeds or ()), count, run.generator, run.device)
        assert run.seeds is not None
        second = run.seeds.images[partner.cpu()].to(run.device)
        images = snap(cutmix(first, second, run.generator, self.alpha))
        with torch.no_grad():
            labels = run.model(images).argmax(1)
        return Candidates(images, labels, torch.ones_like(labels, dtype=torch.bool), sources)
