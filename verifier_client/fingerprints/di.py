"""Dataset Inference, Blind Walk, label-only: do the owner's private training points lie
farther from the suspect's decision boundary than points the owner never trained on?

Pratyush Maini, Mohammad Yaghini, Nicolas Papernot. "Dataset Inference: Ownership Resolution in
Machine Learning". ICLR 2021 (public code: cleverhans-lab/dataset-inference, ``rand_steps``).
Its known failure: Szyller, Zhang, Asokan. "On the Robustness of Dataset Inference". TMLR 2023
(independent models trained on the same distribution are accused).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from models.errors import UserError
from models.provenance import code_version, utc_now
from verifier_client.fingerprint_set import FingerprintSet
from verifier_client.fingerprints.base import (
    Candidates,
    FingerprintMethod,
    Run,
    SeedPool,
    register_method,
    restored_modes,
)


@register_method("di")
class DatasetInference(FingerprintMethod):
    r"""Dataset Inference with label-only Blind Walk distances (Maini et al., ICLR 2021).

    Not a set of optimised samples: the set holds ``n / 2`` of the owner's **private**
    training points (``private``: points the target trained on and the owner never published;
    the zoo uses ``models.zoo.steps.owner_private_split``) and ``n / 2`` **public** points the
    target never trained on (``seeds``: the owner's half of the test split), with their *true*
    labels, and the walk's settings. Verification (``walk`` representation) sends, for every
    point, the point itself and ``steps`` growing steps along each of ``directions`` random
    sign directions of L-inf size ``step``; a point's distance is the mean over directions of
    the first step the suspect answers a label other than the true one. The rate is the share
    of (private, public) pairs in which the private point is farther: 0.5 for a model that
    never saw the private points, more for the target and whatever learned from it.

    The paper then trains a regressor on the target's distances and runs a one-sided t-test on
    the suspect's scores; this port keeps the mean distance as the score (the regressor's
    weighting of directions adds nothing with one kind of direction), and reports the paper's
    own one-sided Welch t-test beside the calibrated verdict (``representations.walk_distances``)
    so its behaviour on innocents that share the training data can be measured.

    Arguments:
        directions (int): random directions per point. Default: 8.
        steps (int): steps per direction (each a query). Default: 16.
        step (float): L-inf length of one step in [0, 1] pixels. Default: 0.025 (16 steps reach
            0.4, past which Fashion-MNIST images are noise).
        plus the common ``margin`` (unused), ``max_rounds``, ``max_batch``.

    Queries per verification repeat: ``n * (1 + directions * steps)`` (12,900 at the defaults
    with n = 100).
    """

    representation = "walk"
    uses_seeds = True

    def __init__(self, *, directions: int = 8, steps: int = 16, step: float = 0.025,
                 **common: Any) -> None:
        self.directions, self.steps, self.step = int(directions), int(steps), float(step)
        super().__init__(**common)

    def _check_params(self) -> None:
        if self.directions < 1 or self.steps < 1 or not 0 < self.step <= 1:
            raise UserError(f"di: need directions >= 1, steps >= 1 and 0 < step <= 1; got "
                            f"{self.directions}, {self.steps}, {self.step}")
        if self.family is not None:
            raise UserError("di: the walk is not optimised; --eot does not apply")

    def candidates(self, run: Run, count: int) -> Candidates:  # pragma: no cover - not a loop
        raise NotImplementedError("Dataset Inference builds its set in generate()")

    def generate(self, model: nn.Module, n: int, *, generator: torch.Generator,
                 seeds: Any = None, pools: Any = None, progress: Any = None,
                 target: dict[str, Any] | None = None, input_shape: Any = None,
                 private: Any = None) -> FingerprintSet:
        """``n // 2`` seeded private points of ``private`` and as many public ones of
        ``seeds`` (both with true labels), and the walk's settings and seed."""
        started = time.perf_counter()
        if pools is not None:
            raise UserError("di does not use model pools")
        if isinstance(n, bool) or not isinstance(n, int) or n < 2 or n % 2:
            raise UserError(f"di: n must be an even integer >= 2 (half private, half public); "
                            f"got {n!r}")
        if seeds is None or private is None:
            raise UserError("di needs public points (seeds) and the owner's private training "
                            "points (private)")
        public_pool, private_pool = SeedPool.from_any(seeds), SeedPool.from_any(private)
        if public_pool.labels is None or private_pool.labels is None:
            raise UserError("di: both pools need their true labels")
        half = n // 2
        for pool, what in ((private_pool, "private"), (public_pool, "public")):
            if len(pool) < half:
                raise UserError(f"di: {half} {what} points wanted, the pool has {len(pool)}")
        chosen_private = torch.randperm(len(private_pool), generator=generator)[:half]
        chosen_public = torch.randperm(len(public_pool), generator=generator)[:half]
        images = torch.cat([private_pool.images[chosen_private],
                            public_pool.images[chosen_public]])
        labels = torch.cat([private_pool.labels[chosen_private],
                            public_pool.labels[chosen_public]])
        walk_seed = int(torch.randint(0, 2**31 - 1, (), generator=generator))
        with restored_modes(model), torch.no_grad():
            model.eval()
            shape = list(images.shape[1:])
            target_correct = int((model(images).argmax(1).cpu() == labels).sum())
        metadata = {
            "method": self.name, "representation": self.representation,
            "parameters": self.parameters(), "eot": None, "target": target or {},
            "seed": int(generator.initial_seed()), "code_version": code_version(),
            "candidates_tried": n, "rounds": 1, "acceptance_rate": 1.0, "converged": n,
            "generation_seconds": round(time.perf_counter() - started, 2), "device": "cpu",
            "n": n, "input_shape": shape, "num_classes": None,
            "seeds": {"public": public_pool.description, "private": private_pool.description},
            "pools": None, "created": utc_now(), "target_correct": target_correct,
            "walk": {"directions": self.directions, "steps": self.steps, "step": self.step,
                     "seed": walk_seed, "members": [True] * half + [False] * half},
        }
        sources = torch.cat([chosen_private, chosen_public]).to(torch.int64)
        return FingerprintSet(images.contiguous(), labels.to(torch.int64), metadata, sources)
