"""Error rates of every fingerprinting method over a population of suspects (SAC / QuRD style).

The score of a suspect for a method is its matching rate (share of fingerprints it labels as
the target does), averaged over the repeats of a query budget. Per method, with the population
manifest's roles (``models.zoo.manifest``):

* **ROC-AUC** of all positives, and of each attack category, against the *held-out* negatives
  (``P(score_pos > score_neg) + P(=)/2``, the Mann-Whitney statistic, from scipy), with a 95%
  bootstrap interval that resamples models within each group;
* **TPR at FPR 1% and 5%**: the decision threshold comes from the *calibration* negatives alone,
  as the conformal quantile: the ``ceil((1 - a)(n + 1))``-th smallest of the n calibration
  scores, so that an exchangeable innocent model is accused with probability at most ``a``.
  When that rank exceeds n (20 models cannot guarantee 1%: the floor is 1/(n + 1)), the
  maximum is used and the report says that the guarantee is only 1/(n + 1). The held-out
  negatives' measured FPR at the same threshold is reported beside it;
* **budget curves**: the AUC (all positives vs held-out) when the owner sends only ``k`` of the
  N fingerprints (the same seeded random subset for every model, averaged over ``subsamples``
  draws) or only the first ``r`` repeats.

Held-out negatives never enter a threshold; calibration negatives never enter an AUC.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from models.errors import UserError

FPRS = (0.01, 0.05)
FINGERPRINT_BUDGETS = (10, 25, 50, 100)
REPEAT_BUDGETS = (1, 5, 20)
BOOTSTRAP_DRAWS = 2000


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """ROC-AUC: ``P(pos > neg) + P(pos == neg) / 2`` (Mann-Whitney U over n_pos * n_neg)."""
    if not len(positives) or not len(negatives):
        raise ValueError("AUC needs at least one positive and one negative")
    u = stats.mannwhitneyu(positives, negatives, alternative="two-sided").statistic
    return float(u) / (len(positives) * len(negatives))


def auc_interval(positives: Sequence[float], negatives: Sequence[float], seed: int = 0,
                 draws: int = BOOTSTRAP_DRAWS) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the AUC, resampling models within each group."""
    rng = np.random.default_rng(seed)
    pos, neg = np.asarray(positives, float), np.asarray(negatives, float)
    values = [auc(rng.choice(pos, pos.size), rng.choice(neg, neg.size)) for _ in range(draws)]
    low, high = np.quantile(values, [0.025, 0.975])
    return float(low), float(high)


def roc_points(positives: Sequence[float], negatives: Sequence[float]) -> list[list[float]]:
    """``[fpr, tpr]`` of the rule "score > t" for every distinct threshold, from (0,0) to (1,1)."""
    pos, neg = np.asarray(positives, float), np.asarray(negatives, float)
    thresholds = np.unique(np.concatenate([pos, neg]))[::-1]
    points = [[0.0, 0.0]]
    for t in thresholds:
        points.append([float((neg >= t).mean()), float((pos >= t).mean())])
    return points


def calibrated_threshold(calibration: Sequence[float], fpr: float) -> dict[str, Any]:
    """The conformal threshold for false-positive rate ``fpr`` from calibration scores alone.

    A suspect is accused when its score is strictly above ``threshold``.
    """
    scores = np.sort(np.asarray(calibration, float))
    n = scores.size
    rank = math.ceil((1.0 - fpr) * (n + 1))
    if rank <= n:
        return {"fpr": fpr, "threshold": float(scores[rank - 1]), "rank": rank,
                "guaranteed_fpr": fpr, "note": None}
    return {"fpr": fpr, "threshold": float(scores[-1]), "rank": n,
            "guaranteed_fpr": round(1.0 / (n + 1), 4),
            "note": f"{n} calibration models cannot guarantee {fpr:g}: the maximum is used, "
                    f"which guarantees 1/(n+1) = {1.0 / (n + 1):.3f}"}


def rates(outcomes: np.ndarray, fingerprints: np.ndarray | None = None,
          repeats: int | None = None) -> float:
    """Matching rate from a bool ``[repeats, N]`` matrix at a budget (subset, first r)."""
    chosen = outcomes[:repeats] if repeats is not None else outcomes
    if fingerprints is not None:
        chosen = chosen[:, fingerprints]
    return float(chosen.mean())


def check_budgets(n: int, repeats: int, fingerprint_budgets: Sequence[int],
                  repeat_budgets: Sequence[int]) -> None:
    """``UserError`` for a budget the sets or the measured repeats cannot supply."""
    too_many = [k for k in fingerprint_budgets if not 1 <= k <= n]
    if too_many:
        raise UserError(f"fingerprint budget {too_many[0]} is outside 1..{n} (the sets hold {n})")
    too_long = [r for r in repeat_budgets if not 1 <= r <= repeats]
    if too_long:
        raise UserError(f"repeat budget {too_long[0]} is outside 1..{repeats} (--repeats)")


def _group(scores: dict[str, float], names: Sequence[str]) -> list[float]:
    return [scores[name] for name in names]


def method_report(scores: dict[str, float], calibration: Sequence[str], heldout: Sequence[str],
                  categories: dict[str, list[str]], seed: int) -> dict[str, Any]:
    """AUC (with interval), ROC curve and TPR at the calibrated thresholds, overall and per
    attack category, for one method at one budget."""
    negatives = _group(scores, heldout)
    thresholds = [calibrated_threshold(_group(scores, calibration), fpr) for fpr in FPRS]
    groups = {"all": [n for names in categories.values() for n in names], **categories}
    out: dict[str, Any] = {"thresholds": thresholds, "heldout_fpr": {
        str(t["fpr"]): float(np.mean([s > t["threshold"] for s in negatives]))
        for t in thresholds}, "groups": {}}
    for group, names in groups.items():
        positives = _group(scores, names)
        out["groups"][group] = {
            "models": list(names), "auc": round(auc(positives, negatives), 4),
            "auc_ci95": [round(v, 4) for v in auc_interval(positives, negatives, seed)],
            "tpr": {str(t["fpr"]): round(float(np.mean([s > t["threshold"] for s in positives])),
                                         4) for t in thresholds},
        }
    out["roc"] = roc_points(_group(scores, groups["all"]), negatives)
    return out


def heldout_kinds(scores: dict[str, float], thresholds: Sequence[dict[str, Any]],
                  kinds: dict[str, list[str]], positives: Sequence[str]) -> dict[str, Any]:
    """Per kind of held-out innocent: how many, their mean score, the share above each
    calibrated threshold (the FPR an innocent of that kind meets) and the AUC of all positives
    against them alone. Innocents of the owner's recipe, of other architectures, or that never
    saw the owner's private points (what Dataset Inference claims to tell apart) differ."""
    ranked = _group(scores, positives)
    out = {}
    for kind, names in kinds.items():
        values = _group(scores, names)
        out[kind] = {"models": len(values), "mean_score": round(float(np.mean(values)), 4),
                     "fpr": {str(t["fpr"]): round(float(np.mean(
                         [v > t["threshold"] for v in values])), 4) for t in thresholds},
                     "auc_all_positives": round(auc(ranked, values), 4)}
    return out


def budget_curves(outcomes: dict[str, np.ndarray], calibration: Sequence[str],
                  heldout: Sequence[str], categories: dict[str, list[str]],
                  fingerprint_budgets: Sequence[int], repeat_budgets: Sequence[int],
                  subsamples: int, seed: int) -> dict[str, Any]:
    """AUC against the number of fingerprints (seeded subsets) and of repeats, per group."""
    n = next(iter(outcomes.values())).shape[1]
    rng = np.random.default_rng(seed)
    groups = {"all": [m for names in categories.values() for m in names], **categories}
    by_k: dict[str, dict[str, list[float]]] = {g: {} for g in groups}
    for k in fingerprint_budgets:
        draws = [rng.choice(n, k, replace=False) for _ in range(subsamples if k < n else 1)]
        for group, names in groups.items():
            values = [auc([rates(outcomes[m], idx) for m in names],
                          [rates(outcomes[m], idx) for m in heldout]) for idx in draws]
            by_k[group][str(k)] = [round(float(np.mean(values)), 4),
                                   round(float(np.std(values)), 4)]
    by_r = {group: {str(r): round(auc([rates(outcomes[m], None, r) for m in names],
                                      [rates(outcomes[m], None, r) for m in heldout]), 4)
                    for r in repeat_budgets} for group, names in groups.items()}
    return {"fingerprints": by_k, "repeats": by_r, "subsamples": subsamples}
