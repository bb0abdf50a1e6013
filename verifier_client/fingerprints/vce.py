"""VCE: vanilla characteristic examples, PGD from uniform noise to random pre-assigned labels.

Siyue Wang, Xiao Wang, Pin-Yu Chen, Pu Zhao, Xue Lin. "Characteristic Examples: High-Robustness,
Low-Transferability Fingerprinting of Neural Networks". IJCAI 2021. Seed paper, section 2.3.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from models.errors import UserError
from verifier_client.fingerprints.base import (
    Candidates,
    FingerprintMethod,
    Run,
    randint,
    register_method,
    snap,
    uniform,
)


@register_method("vce")
class VCE(FingerprintMethod):
    r"""VCE (Wang et al., IJCAI 2021): targeted PGD from noise, L-inf unconstrained.

    Each candidate starts as uniform noise ``x ~ U[0, 1]^{C x H x W}`` with a label ``y`` drawn
    uniformly from the classes, then runs ``steps`` iterations of signed-gradient descent on
    the cross-entropy, clipped to [0, 1] (there is no epsilon ball)::

        x <- clip_[0,1](x - alpha * sign(grad_x CE(f(x), y)))

    The full ``steps`` are always run (no early stop: the samples end deep in class ``y``, which
    is what makes VCEs robust to modified copies). A candidate is kept when the target labels its
    8-bit image ``y`` (with the common logit ``margin``); its label is ``y``.

    Arguments:
        alpha (float): PGD step size in [0, 1] pixel units. Default: 0.01 (about 2.5 / 255).
        steps (int): PGD iterations. Default: 100.
        plus the common ``margin``, ``max_rounds``, ``max_batch`` (see ``FingerprintMethod``).

    Shapes: samples float [N, C, H, W] on the 8-bit grid; labels int64 [N]; ``sources`` -1.
    """

    expected_acceptance = 0.9

    def __init__(self, *, alpha: float = 0.01, steps: int = 100, **common: Any) -> None:
        self.alpha, self.steps = float(alpha), int(steps)
        super().__init__(**common)

    def _check_params(self) -> None:
        if not 0 < self.alpha <= 1 or self.steps < 1:
            raise UserError(f"{self.name}: need 0 < alpha <= 1 and steps >= 1, got "
                            f"alpha={self.alpha}, steps={self.steps}")

    # hooks for the RCE family ---------------------------------------------------------------
    def _start(self, run: Run, count: int) -> Tensor:
        return uniform((count, *run.input_shape), run.generator, run.device)

    def _gradient(self, run: Run, x: Tensor, y: Tensor) -> Tensor:
        """Input gradient of the summed cross-entropy towards ``y`` on the target (averaged
        over the transform family's draws under EOT)."""
        x = x.detach().requires_grad_(True)
        loss = F.cross_entropy(run.model(run.views(x)), run.repeat(y), reduction="none")
        return torch.autograd.grad(run.average(loss).sum(), x)[0]

    def _project(self, x: Tensor) -> Tensor:
        """After each step: back into the feasible set (here: the [0, 1] box)."""
        return x.clamp(0.0, 1.0)

    # ---------------------------------------------------------------------------------------
    def candidates(self, run: Run, count: int) -> Candidates:
        y = randint(run.num_classes, count, run.generator, run.device)
        x = self._project(self._start(run, count))
        for step in range(self.steps):
            grad = self._gradient(run, x, y)
            x = self._project(x.detach() - self.alpha * grad.sign())
            run.report(step + 1, self.steps)
        images = snap(x.detach())
        with torch.no_grad():
            accepted = run.model(images).argmax(1) == y
        sources = torch.full((count,), -1, dtype=torch.int64)
        return Candidates(images, y, accepted, sources)
