"""How a fingerprint set turns a suspect's answers into outcomes (QuRD's "output
representation" and "distance", Godinot et al., AAAI 2025, in the one shape every verdict here
takes: bool outcomes ``[repeats, M]`` whose mean is the set's matching rate).

A set names its representation in its metadata (``representation``; sets without one are
``labels``). Each representation says which images are sent (``queries``) and how the labels
answered to them become outcomes (``outcomes``); votes are taken per query before (the modal
label of K answers), so every representation works behind a randomized front too.

* ``labels``: the sample images; outcome ``i`` = the suspect answered sample ``i``'s label
  (IPGuard, CAE, VCE, RCE*, AKH: a Hamming distance on hard labels).
* ``label-pairs``: the sample images; outcome ``(i, j)`` for every pair ``i < j`` = the suspect
  agrees with the target on whether ``i`` and ``j`` share a class. This is SAC's correlation
  matrix on one-hot outputs (Guan et al., NeurIPS 2022, ``cal_cor_onehot``): the cosine
  distance of two one-hot rows is 0 for one class and one constant otherwise, so SAC's L1
  distance between the target's and the suspect's matrices is that constant times the share
  of disagreeing pairs, i.e. one minus this rate. It ignores which class is which.
* ``walk``: Dataset Inference's Blind Walk (Maini, Yaghini, Papernot, ICLR 2021), label-only.
  From each point (the owner's private training points, then points it never trained on:
  ``metadata["walk"]["members"]``) the suspect is asked at ``steps`` growing steps along each
  of ``directions`` seeded random sign directions (L-inf step ``step``), and at the point
  itself; a point's distance to the boundary is the mean over directions of the first step
  whose label is not the point's true label (0 if the point itself is misclassified,
  ``steps + 1`` if no step flips it). For every private ``i`` and public ``j`` two outcomes,
  ``d_i > d_j`` and ``d_i >= d_j``: the rate is the Mann-Whitney estimate (ties half) of
  P(a private point lies farther from the suspect's boundary than a public one), 0.5 for a
  model that never saw the private points. DI's own test (a one-sided Welch t-test on the
  distances, no calibration) is :func:`walk_distances` plus ``scipy.stats.ttest_ind``; its
  known failure is that innocents trained on the same data pass it too (Szyller et al., TMLR
  2023).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np

from models.errors import UserError
from models.registry import Registry

if TYPE_CHECKING:
    from verifier_client.fingerprint_set import FingerprintSet

REPRESENTATIONS: Registry[Representation] = Registry("output representation")


class Representation(ABC):
    """Queries of a set and the outcomes of the labels answered to them."""

    name = ""

    def queries(self, fset: FingerprintSet) -> np.ndarray:
        """Images to send, float32 ``[Q, C, H, W]`` on the 8-bit grid."""
        return fset.images_array

    @abstractmethod
    def outcomes(self, fset: FingerprintSet, labels: np.ndarray) -> np.ndarray:
        """Bool ``[R, M]`` from answered labels ``[R, Q]`` (one row per repeat)."""

    def check(self, fset: FingerprintSet) -> str | None:
        """What is wrong with ``fset`` for this representation, or ``None``."""
        return None


def _register(cls: type[Representation]) -> type[Representation]:
    REPRESENTATIONS.register(cls.name)(cls())  # type: ignore[arg-type]
    return cls


@_register
class Labels(Representation):
    name = "labels"

    def outcomes(self, fset: FingerprintSet, labels: np.ndarray) -> np.ndarray:
        return np.asarray(labels) == fset.labels_array[None, :]


@_register
class LabelPairs(Representation):
    name = "label-pairs"

    def outcomes(self, fset: FingerprintSet, labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels)
        first, second = np.triu_indices(fset.n, k=1)
        expected = fset.labels_array[first] == fset.labels_array[second]
        return (labels[:, first] == labels[:, second]) == expected[None, :]


def walk_settings(fset: FingerprintSet) -> dict[str, Any]:
    walk = fset.metadata.get("walk")
    if not isinstance(walk, dict):
        raise UserError(f"{fset.name}: a walk set needs metadata['walk']")
    return walk


def walk_queries(images: Any, directions: int, steps: int, step: float, seed: int) -> np.ndarray:
    """``[P, C, H, W]`` points -> the points, then for each point, direction and step
    ``x + t * step * sign_direction`` snapped to the 8-bit grid: ``P * (1 + directions *
    steps)`` images (float32), point-major. The signs come from a NumPy stream seeded by
    ``seed``, so the queries are a pure function of the set."""
    images = np.asarray(images, dtype=np.float32)
    rng = np.random.default_rng(seed)
    signs = rng.integers(0, 2, size=(len(images), directions, *images.shape[1:])) * 2 - 1
    t = np.arange(1, steps + 1, dtype=np.float32).reshape(1, 1, steps, 1, 1, 1)
    walked = images[:, None, None] + t * np.float32(step) * signs[:, :, None].astype(np.float32)
    walked = (np.round(np.clip(walked, 0, 1) * 255) / 255).astype(np.float32)
    points = images[:, None]
    return np.concatenate([points, walked.reshape(len(images), directions * steps,
                                                  *images.shape[1:])], axis=1).reshape(
        -1, *images.shape[1:])


def walk_distances(fset: FingerprintSet, labels: np.ndarray) -> np.ndarray:
    """Each point's mean distance to the boundary, ``[R, P]``, from answered ``[R, Q]``."""
    walk = walk_settings(fset)
    directions, steps = int(walk["directions"]), int(walk["steps"])
    answers = np.asarray(labels).reshape(len(labels), fset.n, 1 + directions * steps)
    truth = fset.labels_array[None, :, None]
    base_wrong = answers[:, :, 0] != truth[:, :, 0]
    flipped = (answers[:, :, 1:] != truth).reshape(len(labels), fset.n, directions, steps)
    first = np.where(flipped.any(axis=3), flipped.argmax(axis=3) + 1, steps + 1)
    return np.where(base_wrong, 0.0, first.mean(axis=2))


@_register
class Walk(Representation):
    name = "walk"

    def queries(self, fset: FingerprintSet) -> np.ndarray:
        walk = walk_settings(fset)
        return walk_queries(fset.images_array, int(walk["directions"]), int(walk["steps"]),
                            float(walk["step"]), int(walk["seed"]))

    def outcomes(self, fset: FingerprintSet, labels: np.ndarray) -> np.ndarray:
        members = np.asarray(walk_settings(fset)["members"], dtype=bool)
        distance = walk_distances(fset, labels)
        private, public = distance[:, members, None], distance[:, None, ~members]
        # two outcomes per pair, d_i > d_j and d_i >= d_j: their mean is the Mann-Whitney
        # statistic with ties counted half (misclassified points tie at distance 0)
        return np.concatenate([(private > public).reshape(len(labels), -1),
                               (private >= public).reshape(len(labels), -1)], axis=1)

    def check(self, fset: FingerprintSet) -> str | None:
        try:
            walk = walk_settings(fset)
            members = walk["members"]
            ok = (len(members) == fset.n and any(members) and not all(members)
                  and int(walk["directions"]) >= 1 and int(walk["steps"]) >= 1
                  and 0 < float(walk["step"]) <= 1)
        except (UserError, KeyError, TypeError, ValueError):
            ok = False
        return None if ok else ("metadata['walk'] needs members (one bool per point, both "
                                "kinds), directions >= 1, steps >= 1 and 0 < step <= 1")


def representation_of(fset: FingerprintSet) -> Representation:
    name = fset.metadata.get("representation", "labels")
    if name not in REPRESENTATIONS:
        raise UserError(f"{fset.name}: unknown representation {name!r}; known: "
                        f"{', '.join(REPRESENTATIONS.names())}")
    return REPRESENTATIONS.get(name)
