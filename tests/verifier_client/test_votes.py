"""Majority votes (``verifier_client.votes``, ``models.voting``) and voted matching outcomes."""

from __future__ import annotations

import numpy as np
import torch

from models.voting import modal_labels
from verifier_client.fingerprint_set import FingerprintSet
from verifier_client.matching import match_outcomes
from verifier_client.votes import set_outcomes


def test_modal_labels_break_ties_low() -> None:
    answers = np.array([[1, 2, 3], [1, 0, 4], [2, 0, 5]])
    assert modal_labels(answers).tolist() == [1, 0, 3]  # 3, 4, 5 once each: the lowest


def test_vote_groups_and_an_incomplete_last_group() -> None:
    fset = FingerprintSet(torch.zeros(2, 1, 4, 4), torch.tensor([1, 0]), {"method": "m"})
    answers = [np.array([1, 2]), np.array([1, 0]), np.array([0, 0]), np.array([9, 9])]
    assert set_outcomes(fset, answers, 3).tolist() == [[True, True]]
    assert set_outcomes(fset, answers, 1).shape == (4, 2)
    assert set_outcomes(fset, [], 2).shape[0] == 0


def test_votes_steady_a_noisy_front() -> None:
    """Behind label noise that flips 30% of the answers, the modal label of 15 votes is
    almost always the true one."""
    images = torch.zeros(200, 1, 4, 4)
    labels = torch.zeros(200, dtype=torch.int64)
    fset = FingerprintSet(images, labels, {"method": "m"})
    rng = torch.Generator().manual_seed(0)

    class Noisy:
        def predict(self, batch: torch.Tensor) -> torch.Tensor:
            return (torch.rand(len(batch), generator=rng) < 0.3).to(torch.int64)

    def identity(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return batch

    single = match_outcomes(Noisy(), fset, identity, repeats=4).float().mean()
    voted = match_outcomes(Noisy(), fset, identity, repeats=4, votes=15).float().mean()
    assert 0.6 < single < 0.8 and voted > 0.9
