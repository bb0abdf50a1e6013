"""Majority votes: score each fingerprint's modal label over K answers to the same query.

A pirate behind a randomized front answers one fingerprint differently from query to query; an
owner who asks K times and keeps the most frequent label (ties go to the lowest label) sees
the label the stolen model gives under most draws. Votes cost K times the queries, and count
in every query budget.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.voting import modal_labels


def vote_outcomes(answers: Sequence[np.ndarray], expected: np.ndarray, votes: int = 1
                  ) -> np.ndarray:
    """Outcomes bool ``[repeats, N]`` from answers to the same N queries: with ``votes`` K,
    each group of K consecutive answers is one repeat scoring every query's modal label (ties
    go to the lowest label); an incomplete last group is dropped."""
    expected = np.asarray(expected)
    if votes == 1:
        return np.stack([a == expected for a in answers]) if answers else \
            np.zeros((0, expected.size), dtype=bool)
    rows = [modal_labels(np.stack(answers[start:start + votes])) == expected
            for start in range(0, len(answers) - votes + 1, votes)]
    return np.stack(rows) if rows else np.zeros((0, expected.size), dtype=bool)
