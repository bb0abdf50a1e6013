"""IPGuard: data points near the target's classification boundary.

Xiaoyu Cao, Jinyuan Jia, Neil Zhenqiang Gong. "IPGuard: Protecting Intellectual Property of Deep
Neural Network Classifiers via Fingerprinting the Classification Boundary". AsiaCCS 2021.
Seed paper, section 2.3 and 5.1 (k = 5, following the original implementation).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from models.errors import UserError
from verifier_client.fingerprints.base import (
    BatchAdam,
    Candidates,
    FingerprintMethod,
    Run,
    randint,
    register_method,
    snap,
    snap_ste,
)


def ipguard_loss(logits: Tensor, i: Tensor, j: Tensor, k: float) -> Tensor:
    """Per-sample ``ReLU(z_i - z_j + k) + ReLU(max_{t != i, j} z_t - z_i)``.

    Zero exactly when ``z_j >= z_i + k`` and ``z_i >= z_t`` for every other ``t``: the target
    labels the point ``j``, class ``i`` is the runner-up, ``k`` logits behind.
    """
    z_i = logits.gather(1, i[:, None]).squeeze(1)
    z_j = logits.gather(1, j[:, None]).squeeze(1)
    others = logits.scatter(1, i[:, None], -math.inf).scatter(1, j[:, None], -math.inf)
    return F.relu(z_i - z_j + k) + F.relu(others.max(1).values - z_i)


@register_method("ipguard")
class IPGuard(FingerprintMethod):
    r"""IPGuard (Cao, Jia, Gong, AsiaCCS 2021), L-inf unconstrained, images kept in [0, 1].

    From a clean seed ``x`` (float [C, H, W] in [0, 1]) that the target labels ``i``, draw a
    class ``j != i`` uniformly at random and minimise with Adam on the target's logits ``z``::

        loss = ReLU(z_i - z_j + k) + ReLU(max_{t != i, j} z_t - z_i)

    Stopping rule (per sample, checked on the 8-bit image through a straight-through snap):
    a sample leaves the optimisation the first step its quantised image has loss exactly 0,
    i.e. ``z_j - z_i >= k`` and ``z_i >= z_t`` for all ``t != i, j`` (the target labels it
    ``j``, class ``i`` is the runner-up ``k`` logits behind), or when ``steps`` is reached. As
    in the original, the fingerprint label is the target's prediction on the final 8-bit
    image, whether or not the loss reached 0 (``keep_unconverged=True``); with
    ``keep_unconverged=False`` only samples that reached loss 0 are kept and the rest replaced
    by fresh candidates. The set's metadata counts the converged samples (``converged``).

    Arguments (defaults are the seed paper's / public ports' settings):
        k (float): the margin between the two classes, robustness vs. uniqueness. Default: 5.
        lr (float): Adam learning rate. Default: 0.01.
        steps (int): iteration cap per candidate. Default: 1000.
        keep_unconverged (bool): keep samples that hit the cap with loss > 0. Default: True.
        plus the common ``margin``, ``max_rounds``, ``max_batch`` (see ``FingerprintMethod``).

    Shapes: seeds float [M, C, H, W] in [0, 1]; samples float [N, C, H, W] on the 8-bit grid.
    """

    uses_seeds = True
    expected_acceptance = 1.0

    def __init__(self, *, k: float = 5.0, lr: float = 0.01, steps: int = 1000,
                 keep_unconverged: bool = True, **common: Any) -> None:
        self.k, self.lr, self.steps = float(k), float(lr), int(steps)
        self.keep_unconverged = bool(keep_unconverged)
        super().__init__(**common)

    def _check_params(self) -> None:
        if not (self.k > 0 and math.isfinite(self.k)):
            raise UserError(f"ipguard: k must be a finite number > 0, got {self.k}")
        if not self.lr > 0 or self.steps < 1:
            raise UserError(f"ipguard: need lr > 0 and steps >= 1, got lr={self.lr}, "
                            f"steps={self.steps}")

    def candidates(self, run: Run, count: int) -> Candidates:
        model, device = run.model, run.device
        x0, _, sources = run.next_seeds(count)
        with torch.no_grad():
            i = model(x0).argmax(1)
        # uniform over the other classes: i + U{1..C-1} mod C
        j = (i + 1 + randint(run.num_classes - 1, count, run.generator, device)) % run.num_classes
        out = snap(x0)
        converged = torch.zeros(count, dtype=torch.bool, device=device)
        rows = torch.arange(count, device=device)  # which candidate each active row is
        x = x0.clone()
        adam = BatchAdam(x, self.lr)
        for step in range(self.steps + 1):
            x.requires_grad_(True)
            xq = snap_ste(x)
            loss = run.average(ipguard_loss(model(run.views(xq)), run.repeat(i), run.repeat(j),
                                            self.k))
            done = (loss == 0).detach()
            out[rows] = xq.detach()  # the latest 8-bit image of every active candidate
            converged[rows[done]] = True
            if step == self.steps:
                break
            (grad,) = torch.autograd.grad(loss.sum(), x)
            if bool(done.any()):
                active = ~done
                x, grad, rows, i, j = x[active], grad[active], rows[active], i[active], j[active]
                adam.keep(active)
            run.report(step + 1, self.steps)
            if len(rows) == 0:
                break
            x = adam.step(x, grad).clamp_(0.0, 1.0)
        with torch.no_grad():
            labels = model(out).argmax(1)
        accepted = torch.ones_like(converged) if self.keep_unconverged else converged
        return Candidates(out, labels, accepted, sources, converged)
