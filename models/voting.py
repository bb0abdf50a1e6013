"""Majority votes over repeated answers to the same queries (used by the owner's verifier and by
the pirate's ``tune-defence``, which must predict what a voting owner sees)."""

from __future__ import annotations

import numpy as np


def modal_labels(answers: np.ndarray) -> np.ndarray:
    """The most frequent label per column of int ``answers [K, N]`` (ties go to the lowest
    label)."""
    answers = np.asarray(answers, dtype=np.int64)
    k, n = answers.shape
    counts = np.zeros((n, int(answers.max()) + 1 if answers.size else 1), dtype=np.int64)
    np.add.at(counts, (np.broadcast_to(np.arange(n), (k, n)), answers), 1)
    return counts.argmax(1)
