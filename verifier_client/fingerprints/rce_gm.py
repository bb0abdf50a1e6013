"""RCE-GM: RCE with the input gradient averaged over q parameter draws per step (gradient mean).

Siyue Wang, Xiao Wang, Pin-Yu Chen, Pu Zhao, Xue Lin. "Characteristic Examples: High-Robustness,
Low-Transferability Fingerprinting of Neural Networks". IJCAI 2021; the gradient mean follows
Athalye, Carlini, Wagner (ICML 2018). Seed paper, sections 2.3 and 5.1 (delta = 0.001, q = 10).
"""

from __future__ import annotations

from typing import Any

from verifier_client.fingerprints.base import register_method
from verifier_client.fingerprints.rce import RCE


@register_method("rce-gm")
class RCEGM(RCE):
    r"""RCE-GM (Wang et al., IJCAI 2021): ``g = (1/q) sum_s grad_x CE(f(x; theta + u_s), y)``.

    Identical to ``RCE`` except that each PGD step averages the input gradient over ``q``
    independent parameter draws before taking its sign (cost: ``q`` forward/backward passes per
    step, each over the whole candidate batch).

    Arguments:
        q (int): parameter draws per step. Default: 10 (seed paper).
        delta (float): bound of the uniform parameter noise. Default: 0.001.
        noise (str): "absolute" (default) or "relative"; see ``RCE``.
        alpha (float): PGD step size. Default: 0.01.
        steps (int): PGD iterations. Default: 100.
        plus the common ``margin``, ``max_rounds``, ``max_batch`` (see ``FingerprintMethod``).
    """

    def __init__(self, *, q: int = 10, **common: Any) -> None:
        super().__init__(q=q, **common)
