"""AKH: the owner's own test inputs that the target gets wrong, compared on hard labels.

Augustin Godinot, Erwan Le Merrer, Camilla Penzo, François Taïani, Gilles Trédan. "Queries,
Representations and Detection: the next 100 Model Fingerprinting Schemes". AAAI 2025 (public
code: grodino/QuRD, ``RandomNegativeQueries`` + ``HardLabels`` + Hamming distance).
"""

from __future__ import annotations

from typing import Any

import torch

from verifier_client.fingerprints.base import Candidates, FingerprintMethod, Run, register_method


@register_method("akh")
class AKH(FingerprintMethod):
    r"""AKH (Godinot et al., AAAI 2025): natural inputs the target misclassifies.

    Seeds are the owner's labelled images that no model was trained on (here the first 5,000
    test images, ``generate --seed-samples 5000``; the pirate's test-split students query the
    other half). A seed becomes a sample when the target's label on it differs from its true
    label; the sample's label is the target's (wrong) one. A stolen copy, or a student that
    learned from the target's answers, repeats the target's mistakes; an independent model
    makes its own. The queries are unmodified natural images, so a detector trained on clean
    data has nothing to flag (unlike gradient-made fingerprints). No seed is used twice; the
    paper augments with CutMix only when the pool holds fewer errors than the budget, which
    never happens here (about 470 errors in 5,000 images for N = 100), so this port does not.

    Arguments: the common ``margin`` (the target's top-1 margin on the sample, default 0.01),
    ``max_rounds``, ``max_batch`` (see ``FingerprintMethod``); no optimisation, no EOT.

    Shapes: seeds float [M, C, H, W] in [0, 1] with labels; samples float [N, C, H, W].
    """

    uses_seeds = True
    expected_acceptance = 0.08

    def __init__(self, **common: Any) -> None:
        common.setdefault("max_rounds", 200)
        super().__init__(**common)

    def _check_params(self) -> None:
        if self.family is not None:
            from models.errors import UserError

            raise UserError("akh: natural inputs are not optimised; --eot does not apply")

    def candidates(self, run: Run, count: int) -> Candidates:
        images, truth, sources = run.next_seeds(count, reuse=False)
        if truth is None:
            from models.errors import UserError

            raise UserError("akh: the seed images need their true labels")
        with torch.no_grad():
            labels = run.model(images).argmax(1)
        return Candidates(images, labels, labels != truth, sources)
