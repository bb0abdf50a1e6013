"""The pirate's query detector: flag inputs unlike its clean data and answer them wrongly.

Detection-based evasion (MisGUIDE, arXiv 2403.18580, against extraction; NaturalFinger, arXiv
2305.17868, argues that unnatural fingerprints are "easily perceived and rejected"): a pirate
screens every query and answers the suspicious ones with a wrong label, so a fingerprint made of
adversarial, boundary or noise-born inputs stops matching.

The score is the class-conditional Mahalanobis distance of Lee et al., "A Simple Unified
Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks" (NeurIPS 2018):
class means ``mu_c`` and one shared covariance fitted on clean data, ``score(x) = min_c (f(x) -
mu_c)^T Sigma^-1 (f(x) - mu_c)``. Here ``f`` is the model's logits, the one layer every entry
exposes (ONNX or torch); Lee et al. use penultimate features, of which the logits are a linear
map. Classes are the model's own predictions (the pirate needs no labels). The threshold is the
``ceil((n + 1)(1 - fpr))``-th smallest score of ``n`` further clean images, disjoint from the
fit: for clean queries exchangeable with them, the chance of being flagged is at most ``fpr``
(split-conformal; the measured rate on the test split is recorded beside it).

A flagged query is answered with the runner-up class (swap the two largest logits): a wrong label
that still looks plausible. Everything here is NumPy (the edge server runs it without torch);
the fit is ~0.1 s on 10-class logits. The file ``detector.safetensors`` holds ``means [K, D]``,
``precision [D, D]`` and ``threshold [1]`` (float64), with the fit's facts as metadata; it is
read with safetensors (never a pickle) and checked for shapes and finite values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.config import DETECTOR_FILE
from models.errors import UserError

__all__ = [
    "DEFAULT_FPR",
    "DETECTORS",
    "DETECTOR_FILE",
    "Detector",
    "fit_detector",
    "load_detector",
]

DETECTORS = ("mahalanobis",)
DEFAULT_FPR = 0.01
#: Ridge added to the covariance's diagonal, relative to its mean variance (logits of a trained
#: model are close to rank-deficient: they sum to about a constant direction).
RIDGE = 1e-6


@dataclass(frozen=True)
class Detector:
    """A fitted Mahalanobis detector on logits (see the module doc)."""

    means: np.ndarray  # [K, D]
    precision: np.ndarray  # [D, D]
    threshold: float
    fpr: float

    def score(self, logits: np.ndarray) -> np.ndarray:
        """``min_c`` Mahalanobis distance of each row of ``logits [N, D]`` (float64 ``[N]``)."""
        x = np.asarray(logits, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.means.shape[1]:
            raise ValueError(f"logits must be [N, {self.means.shape[1]}]; got {x.shape}")
        centred = x[:, None, :] - self.means[None]  # [N, K, D]
        distances = np.einsum("nkd,de,nke->nk", centred, self.precision, centred)
        return distances.min(axis=1)

    def flagged(self, logits: np.ndarray) -> np.ndarray:
        """Bool ``[N]``: the rows whose score is above the threshold."""
        return self.score(logits) > self.threshold

    def answer(self, logits: np.ndarray) -> np.ndarray:
        """``logits`` with the two largest swapped in flagged rows, so that the argmax is the
        runner-up class there and unchanged elsewhere (a copy; float32 kept)."""
        out = np.array(logits, copy=True)
        rows = np.flatnonzero(self.flagged(out))
        if rows.size and out.shape[1] >= 2:
            top2 = np.argsort(-out[rows], axis=1, kind="stable")[:, :2]
            first = out[rows, top2[:, 0]].copy()
            out[rows, top2[:, 0]] = out[rows, top2[:, 1]]
            out[rows, top2[:, 1]] = first
        return out

    def labels(self, logits: np.ndarray) -> np.ndarray:
        """The answered labels, int64 ``[N]``."""
        return self.answer(logits).argmax(axis=1).astype(np.int64)

    def save(self, path: str | Path, metadata: dict[str, str] | None = None) -> None:
        """Write ``path`` atomically (safetensors, float64 tensors, string metadata)."""
        from safetensors.numpy import save

        from models.atomic import write_bytes

        tensors = {"means": np.ascontiguousarray(self.means, dtype=np.float64),
                   "precision": np.ascontiguousarray(self.precision, dtype=np.float64),
                   "threshold": np.array([self.threshold], dtype=np.float64)}
        info = {"name": "mahalanobis", "fpr": repr(self.fpr), **(metadata or {})}
        write_bytes(Path(path), save(tensors, metadata=info))


def fit_detector(fit_logits: np.ndarray, threshold_logits: np.ndarray,
                 fpr: float = DEFAULT_FPR) -> Detector:
    """Fit on clean ``fit_logits [n, D]`` (classes: their argmax) and set the threshold on the
    disjoint clean ``threshold_logits [m, D]`` for a clean false-positive rate of at most
    ``fpr`` (module doc). ``ValueError`` when ``fpr`` is outside (0, 1), when ``m`` is too small
    for it (``ceil((m + 1)(1 - fpr)) > m``) or a class has no fitting sample."""
    if not (isinstance(fpr, float | int) and 0 < fpr < 1):
        raise ValueError(f"fpr must be in (0, 1); got {fpr!r}")
    x = np.asarray(fit_logits, dtype=np.float64)
    held = np.asarray(threshold_logits, dtype=np.float64)
    if x.ndim != 2 or held.ndim != 2 or x.shape[1] != held.shape[1] or x.shape[1] < 2:
        raise ValueError(f"logits must be [N, D] with the same D >= 2; got {x.shape}, "
                         f"{held.shape}")
    if not (np.isfinite(x).all() and np.isfinite(held).all()):
        raise ValueError("logits must be finite")
    m = held.shape[0]
    rank = math.ceil((m + 1) * (1 - fpr))
    if rank > m:
        raise ValueError(f"{m} threshold samples cannot certify fpr {fpr}: need at least "
                         f"{math.ceil(1 / fpr) - 1}")
    classes = x.argmax(axis=1)
    k = x.shape[1]
    missing = [c for c in range(k) if not (classes == c).any()]
    if missing:
        raise ValueError(f"no fitting sample is predicted as class(es) {missing}")
    means = np.stack([x[classes == c].mean(axis=0) for c in range(k)])
    centred = x - means[classes]
    covariance = centred.T @ centred / len(x)
    covariance += np.eye(k) * RIDGE * max(float(np.trace(covariance)) / k, 1e-12)
    detector = Detector(means, np.linalg.inv(covariance), math.inf, float(fpr))
    threshold = float(np.sort(detector.score(held))[rank - 1])
    return Detector(means, detector.precision, threshold, float(fpr))


def load_detector(path: str | Path, num_classes: int) -> Detector:
    """Read and check a ``detector.safetensors`` (``UserError`` naming the file otherwise)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    from models.files import read_regular_file

    path = Path(path)
    try:
        data = read_regular_file(path, 64 * 1024 * 1024)
        tensors = load(data)
    except (OSError, SafetensorError, ValueError) as error:
        raise UserError(f"{path}: not a readable detector file ({error})") from None
    means, precision = tensors.get("means"), tensors.get("precision")
    threshold = tensors.get("threshold")
    fpr = _metadata(data).get("fpr")
    ok = (means is not None and precision is not None and threshold is not None
          and means.shape == (num_classes, num_classes)
          and precision.shape == (num_classes, num_classes) and threshold.shape == (1,)
          and all(np.isfinite(t).all() for t in (means, precision, threshold)))
    if not ok:
        raise UserError(f"{path}: a detector needs finite means [{num_classes}, {num_classes}], "
                        f"precision [{num_classes}, {num_classes}] and threshold [1]")
    try:
        rate = float(fpr) if fpr is not None else math.nan
    except ValueError:
        rate = math.nan
    return Detector(means.astype(np.float64), precision.astype(np.float64),
                    float(threshold[0]), rate)


def _metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors byte string (its JSON header)."""
    import json

    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    meta = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()}
