"""RCE: robust characteristic examples, VCE with the gradient taken on a noisy copy of the target.

Siyue Wang, Xiao Wang, Pin-Yu Chen, Pu Zhao, Xue Lin. "Characteristic Examples: High-Robustness,
Low-Transferability Fingerprinting of Neural Networks". IJCAI 2021. Seed paper, sections 2.3 and
5.1 (delta = 0.001).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call
from torch.nn import functional as F

from models.errors import UserError
from verifier_client.fingerprints.base import Run, register_method
from verifier_client.fingerprints.vce import VCE

NOISE_KINDS = ("absolute", "relative")


@register_method("rce")
class RCE(VCE):
    r"""RCE (Wang et al., IJCAI 2021): VCE whose every PGD step uses perturbed parameters.

    At each step draw ``q`` parameter perturbations and average the input gradients (``q = 1``
    for RCE itself; RCE-GM uses more)::

        theta_s = theta + u_s,  u_s ~ U[-delta, delta]^{|theta|}      (noise="absolute")
        theta_s = theta * (1 + u_s)                                    (noise="relative")
        g = (1 / q) * sum_s grad_x CE(f(x; theta_s), y)
        x <- clip_[0,1](x - alpha * sign(g))

    Noise is added to every trainable parameter (conv and linear weights, biases, BatchNorm
    affine), not to buffers (BatchNorm running statistics, the input normalisation). The model
    is never modified: each draw runs through ``torch.func.functional_call`` with a perturbed
    copy of the parameters. Acceptance is judged on the unperturbed target's 8-bit prediction.

    Arguments:
        delta (float): bound of the uniform parameter noise. Default: 0.001 (seed paper).
        noise (str): "absolute" (additive, the default, as the seed paper's "noise bounded by
            delta") or "relative" (multiplicative, scale-free across layers).
        q (int): parameter draws averaged per step. Default: 1.
        alpha (float): PGD step size. Default: 0.01.
        steps (int): PGD iterations. Default: 100.
        plus the common ``margin``, ``max_rounds``, ``max_batch`` (see ``FingerprintMethod``).
    """

    def __init__(self, *, delta: float = 0.001, noise: str = "absolute", q: int = 1,
                 **common: Any) -> None:
        self.delta, self.noise, self.q = float(delta), str(noise), int(q)
        super().__init__(**common)

    def _check_params(self) -> None:
        super()._check_params()
        if not 0 <= self.delta < 1:
            raise UserError(f"{self.name}: delta must be in [0, 1), got {self.delta}")
        if self.noise not in NOISE_KINDS:
            raise UserError(f"{self.name}: noise must be one of {', '.join(NOISE_KINDS)}, "
                            f"got {self.noise!r}")
        if self.q < 1:
            raise UserError(f"{self.name}: q must be >= 1, got {self.q}")

    def perturbed_parameters(self, run: Run) -> dict[str, Tensor]:
        """One draw of the noisy parameters (and the untouched buffers), for functional_call."""
        state: dict[str, Tensor] = {}
        for name, param in run.model.named_parameters():
            u = torch.rand(param.shape, generator=run.generator).to(param.device) * 2 - 1
            u = u * self.delta
            state[name] = (param + u if self.noise == "absolute" else param * (1 + u)).detach()
        for name, buffer in run.model.named_buffers():
            state[name] = buffer
        return state

    def _gradient(self, run: Run, x: Tensor, y: Tensor) -> Tensor:
        x = x.detach().requires_grad_(True)
        total = torch.zeros_like(x)
        for _ in range(self.q):
            logits = functional_call(run.model, self.perturbed_parameters(run), (run.views(x),))
            loss = run.average(F.cross_entropy(logits, run.repeat(y), reduction="none")).sum()
            total += torch.autograd.grad(loss, x)[0]
        return total / self.q
