"""A false claimant's "fingerprints": targeted adversarial examples made to transfer.

Jian Liu, Rui Zhang, Sebastian Szyller, Kui Ren, N. Asokan. "False Claims against Model
Ownership Resolution". USENIX Security 2024. An accuser crafts, on a model of its own and never
on the suspect, samples that independently trained models label the way its model does, and
presents them as fingerprints: an innocent matches them, and a verification that lets the
accuser choose the null it is compared with calls the innocent stolen. This method is that
accuser's generator; it is in the registry so that the testbed can measure the attack and the
defence (``verifier_client.commitment``, ``verifier_client.studies.false_claims``), not as an
owner's method.

The transfer objective combines three standard ingredients of transferable targeted attacks:
the logit loss ``-z_y`` (Zhao et al., "On Success and Simplicity: A Second Look at Transferable
Targeted Attacks", NeurIPS 2021), momentum on the normalised gradient (MI-FGSM, Dong et al.,
CVPR 2018) and input diversity (DI, Xie et al., CVPR 2019: with probability
``diversity_prob`` each step sees a random resize-and-pad of the image, drawn here from the
registry's CSRP with ``sigma`` 1.1 and ``p`` 2, which is what DI's transform is).

From a clean seed the model labels ``i`` and a target class ``y != i`` drawn uniformly,
``steps`` L-inf steps of size ``alpha`` inside the ``epsilon`` ball around the seed (clipped to
[0, 1]); the sample is kept when the accuser's model labels its 8-bit image ``y`` with the common
logit ``margin``, and its label is ``y``.

Arguments (defaults):
    epsilon (float): L-inf radius in [0, 1] pixel units. Default: 0.25 (Fashion-MNIST images
        are 28 x 28 grey levels; targeted transfer needs a large budget there).
    alpha (float): step size. Default: 0.01.
    steps (int): iterations. Default: 200 (Zhao et al. run 300 on ImageNet).
    momentum (float): MI-FGSM decay. Default: 1.0.
    diversity_prob (float): probability of a diverse input per step. Default: 0.7.
    plus the common ``margin``, ``max_rounds``, ``max_batch`` (see ``FingerprintMethod``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from models.errors import UserError
from models.transforms import CSRP
from verifier_client.fingerprints.base import (
    Candidates,
    FingerprintMethod,
    Run,
    randint,
    register_method,
    snap,
    uniform,
)

#: Input diversity: a small random resize-and-pad (DI's transform), from the registry
DIVERSITY = {"sigma": 1.1, "p": 2}


@register_method("transfer")
class TransferClaim(FingerprintMethod):
    """Targeted, transferable adversarial examples of a false claimant (Liu et al., USENIX
    Security 2024): logit loss, momentum and input diversity (module doc for the defaults)."""

    uses_seeds = True
    expected_acceptance = 0.9

    def __init__(self, *, epsilon: float = 0.25, alpha: float = 0.01, steps: int = 200,
                 momentum: float = 1.0, diversity_prob: float = 0.7, **common: Any) -> None:
        self.epsilon, self.alpha, self.steps = float(epsilon), float(alpha), int(steps)
        self.momentum, self.diversity_prob = float(momentum), float(diversity_prob)
        super().__init__(**common)

    def _check_params(self) -> None:
        values = (self.epsilon, self.alpha, self.momentum, self.diversity_prob)
        if not all(math.isfinite(v) for v in values) or not 0 < self.epsilon <= 1 \
                or not 0 < self.alpha <= 1 or self.steps < 1 or self.momentum < 0 \
                or not 0 <= self.diversity_prob <= 1:
            raise UserError("transfer: need 0 < epsilon <= 1, 0 < alpha <= 1, steps >= 1, "
                            f"momentum >= 0, diversity_prob in [0, 1]; got epsilon="
                            f"{self.epsilon}, alpha={self.alpha}, steps={self.steps}, momentum="
                            f"{self.momentum}, diversity_prob={self.diversity_prob}")

    def _diverse(self, run: Run, x: Tensor, front: CSRP) -> Tensor:
        """Each row resized-and-padded with probability ``diversity_prob`` (draws from the
        run's generator, so a seed replays)."""
        keep = uniform((len(x),), run.generator, x.device) >= self.diversity_prob
        params = front.generate_params(x.shape, run.generator)
        moved = front.apply_params(x, params)
        return torch.where(keep[:, None, None, None], x, moved)

    def candidates(self, run: Run, count: int) -> Candidates:
        model, device = run.model, run.device
        front = CSRP(**DIVERSITY)
        front.set_kernel("eager")
        x0, _, sources = run.next_seeds(count)
        with torch.no_grad():
            i = model(x0).argmax(1)
        y = (i + 1 + randint(run.num_classes - 1, count, run.generator, device)) \
            % run.num_classes
        x = x0.clone()
        velocity = torch.zeros_like(x)
        for step in range(self.steps):
            x.requires_grad_(True)
            logits = model(self._diverse(run, x, front))
            loss = -logits.gather(1, y[:, None]).sum()  # the logit loss, descended
            (grad,) = torch.autograd.grad(loss, x)
            norm = grad.abs().flatten(1).mean(1).clamp_min(1e-12)[:, None, None, None]
            velocity = self.momentum * velocity + grad / norm
            x = x.detach() - self.alpha * velocity.sign()
            x = torch.min(torch.max(x, x0 - self.epsilon), x0 + self.epsilon).clamp(0.0, 1.0)
            run.report(step + 1, self.steps)
        images = snap(x.detach())
        with torch.no_grad():
            accepted = model(images).argmax(1) == y
        return Candidates(images, y, accepted, sources)
