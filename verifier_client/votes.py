"""Majority votes: score each fingerprint's modal label over K answers to the same query.

A pirate behind a randomized front answers one fingerprint differently from query to query; an
owner who asks K times and keeps the most frequent label (ties go to the lowest label) sees
the label the stolen model gives under most draws. Votes cost K times the queries, and count
in every query budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.voting import modal_labels


def set_outcomes(fset: Any, answers: Sequence[np.ndarray], votes: int = 1) -> np.ndarray:
    """Outcomes bool ``[repeats, M]`` of a fingerprint set from answers to its queries: with
    ``votes`` K every K consecutive answers are one repeat, scored by their modal labels; the
    set's representation turns labels into outcomes (``FingerprintSet.score``); an incomplete
    last group is dropped."""
    if not answers:
        return np.zeros((0, 0), dtype=bool)
    stacked = np.stack(answers)
    groups = len(answers) // votes
    if groups == 0:
        return np.zeros((0, 0), dtype=bool)
    stacked = stacked[:groups * votes]
    modal = stacked if votes == 1 else np.stack(
        [modal_labels(stacked[g * votes:(g + 1) * votes]) for g in range(groups)])
    return fset.score(modal)
