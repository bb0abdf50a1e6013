"""Verdicts with stated error rates: p-values, the suspect's uncertainty, and one overall verdict.

Per method, against the calibration negatives' matching rates ``T_1..T_n`` (docs/methods.md,
"Verdicts", says which rule decides and why):

* **rank p-value** ``(1 + #{T_i >= T}) / (n + 1)``: exact when an innocent suspect is
  exchangeable with the calibration models, no fit; it can never go below ``1 / (n + 1)``.
* **parametric p-value**: ``logit(T_i)`` modelled as normal across models; the p-value of a new
  model is the Student-t *predictive* tail ``P(t_{n-1} >= (logit T - m) / (s sqrt(1 + 1/n)))``,
  which accounts for estimating ``m`` and ``s`` from n models (a quantile of a fitted
  distribution does not, and accuses too often: 2.6% instead of 1% with 10 models). Shapiro-Wilk
  on the logit rates checks the normal model; the calibration records its p-value.
* **the suspect's uncertainty**, two 95% bootstrap intervals that respect the correlation of
  outcomes within a fingerprint (some fingerprints are always or never matched, so the
  binomial interval over N x R answers is wrong): over the pirate's randomness on *this* set
  (each fingerprint's repeats resampled), which decides, because the calibration models were
  measured on the same set; and over fingerprints and repeats (two-stage, fingerprints first),
  reported to show how much the rate owes to the particular fingerprints.

Decision, at family-wise level ``alpha`` over the K methods (Holm's step-down procedure, valid
under any dependence between methods, so correlated methods cost power, never validity):

* ``stolen``: Holm rejects the method's null even with the *lowest* rate in its interval;
* ``not_proven``: Holm does not reject it even with the *highest* rate in its interval;
* ``inconclusive``: in between (the verdict would flip inside the deciding interval; more
  repeats narrow it, so ``verify --budget`` keeps querying these).

Overall: ``stolen`` if any method is, else ``inconclusive`` if any method is, else
``not_proven``. Because a method is only called stolen when the p-value at the lower end of its
interval (never below the point estimate's) passes Holm, an innocent model is accused with
probability at most ``alpha`` whenever the null model holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from models.errors import UserError

DEFAULT_ALPHA = 0.01
CONFIDENCE = 0.95
BOOTSTRAP_DRAWS = 2000
MIN_PARAMETRIC_MODELS = 5
VERDICTS = ("stolen", "not_proven", "inconclusive")
DECIDERS = ("auto", "combined", "parametric", "rank")


def logit(rate: float, n: int) -> float:
    """``log(r / (1 - r))`` with ``r`` kept half a fingerprint away from 0 and 1."""
    floor = 0.5 / max(n, 1)
    r = min(max(rate, floor), 1.0 - floor)
    return math.log(r / (1.0 - r))


def rank_p_value(calibration: Sequence[float], rate: float) -> float:
    """``(1 + #{T_i >= rate}) / (n + 1)``: exact under exchangeability, floor ``1 / (n + 1)``."""
    array = np.asarray(calibration, float)
    return float((1 + np.count_nonzero(array >= rate)) / (1 + array.size))


@dataclass(frozen=True)
class LogitNormalNull:
    """The null of an innocent model's rate: logit-normal, with the t predictive tail.

    ``mean`` and ``sd`` are the sample mean and standard deviation (ddof 1) of the calibration
    models' logit rates; ``n`` models; ``n_fingerprints`` clips rates of 0 or 1;
    ``shapiro_p`` is Shapiro-Wilk's p-value for normality of the logit rates.
    """

    mean: float
    sd: float
    n: int
    n_fingerprints: int
    shapiro_p: float | None

    @classmethod
    def fit(cls, rates: Sequence[float], n_fingerprints: int) -> LogitNormalNull:
        values = [logit(r, n_fingerprints) for r in rates]
        if len(values) < 3:
            raise UserError("a parametric null needs at least 3 calibration models")
        sd = float(np.std(values, ddof=1))
        shapiro = float(stats.shapiro(values).pvalue) if sd > 0 else None
        # a floor of one fingerprint's worth of logit keeps identical rates from a zero spread
        floor = 1.0 / math.sqrt(n_fingerprints)
        return cls(float(np.mean(values)), max(sd, floor), len(values), n_fingerprints, shapiro)

    @property
    def _scale(self) -> float:
        return self.sd * math.sqrt(1.0 + 1.0 / self.n)

    def p_value(self, rate: float) -> float:
        """P(a new innocent model's rate >= ``rate``) under the predictive t distribution."""
        z = (logit(rate, self.n_fingerprints) - self.mean) / self._scale
        return float(stats.t.sf(z, df=self.n - 1))

    def boundary(self, level: float) -> float:
        """The rate whose p-value is ``level`` (the decision boundary at that level)."""
        z = float(stats.t.isf(level, df=self.n - 1))
        value = self.mean + z * self._scale
        return 1.0 / (1.0 + math.exp(-value))

    def to_dict(self) -> dict[str, Any]:
        return {"family": "logit-normal, Student-t predictive", "mean_logit": self.mean,
                "sd_logit": self.sd, "n": self.n, "n_fingerprints": self.n_fingerprints,
                "shapiro_p": self.shapiro_p}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogitNormalNull:
        try:
            return cls(float(data["mean_logit"]), float(data["sd_logit"]), int(data["n"]),
                       int(data["n_fingerprints"]), data.get("shapiro_p"))
        except (KeyError, TypeError, ValueError):
            raise UserError(f"calibration null is malformed: {data!r}") from None


COMBINERS = ("mean", "max")


def combined_scores(logit_rates: np.ndarray, how: str = "mean") -> np.ndarray:
    """One score per model from ``logit_rates [models, methods]``: each method's logit rate
    standardised over all the rows given (mean, sd with ddof 1 and a floor of 1e-6), then the
    mean (default) or the max over methods. The standardisation uses every row, the suspect's
    included, so the score is a symmetric function of the models: permuting the rows permutes
    the scores, which is what makes :func:`combined_p_value` exact."""
    rates = np.asarray(logit_rates, dtype=np.float64)
    if rates.ndim != 2 or rates.shape[0] < 2 or rates.shape[1] < 1:
        raise ValueError(f"need logit rates [models >= 2, methods >= 1]; got {rates.shape}")
    if how not in COMBINERS:
        raise ValueError(f"combine must be one of {COMBINERS}; got {how!r}")
    z = (rates - rates.mean(axis=0)) / np.maximum(rates.std(axis=0, ddof=1), 1e-6)
    return z.mean(axis=1) if how == "mean" else z.max(axis=1)


def combined_p_value(calibration: np.ndarray, suspect: np.ndarray, how: str = "mean") -> float:
    """Exact rank p-value of one statistic across methods, fixed before any suspect is seen.

    ``calibration [n, K]`` and ``suspect [K]`` are logit matching rates measured through the
    same query protocol. The scores of the n + 1 models (:func:`combined_scores`, a full
    conformal construction) are ranked: ``(1 + #{S_i >= S}) / (n + 1)``. If an innocent suspect
    is exchangeable with the n calibration models, P(p <= k / (n + 1)) <= k / (n + 1) for every
    k, with no distribution assumed; the floor is ``1 / (n + 1)`` (99 models reach 0.01).
    """
    table = np.vstack([np.asarray(calibration, np.float64),
                       np.asarray(suspect, np.float64)[None, :]])
    scores = combined_scores(table, how)
    return float((1 + np.count_nonzero(scores[:-1] >= scores[-1])) / table.shape[0])


def combined_models_needed(alpha: float) -> int:
    """The fewest calibration models with which a rank p-value can reach ``alpha``."""
    return max(1, math.ceil(1.0 / alpha - 1.0 - 1e-9))


def bootstrap_interval(outcomes: np.ndarray, seed: int = 0, draws: int = BOOTSTRAP_DRAWS,
                       confidence: float = CONFIDENCE,
                       fingerprints: bool = True) -> tuple[float, float]:
    """Bootstrap interval of the mean of bool ``outcomes [repeats, N]``. Always contains the
    point estimate.

    ``fingerprints=True``: two-stage (cluster) bootstrap, the N fingerprints resampled, then each
    chosen fingerprint's repeats: how much the rate depends on the particular fingerprints and
    on the pirate's randomness. ``fingerprints=False``: the fingerprints kept, only each one's
    repeats resampled: the uncertainty of the suspect's rate *on this set*, the one that matters
    against calibration models measured on the same set (it is zero for a deterministic model).
    """
    outcomes = np.asarray(outcomes, dtype=bool)
    repeats, n = outcomes.shape
    rng = np.random.default_rng(seed)
    columns = (rng.integers(0, n, size=(draws, n)) if fingerprints
               else np.broadcast_to(np.arange(n), (draws, n)))
    # Resampling a fingerprint's R repeats with replacement gives Binomial(R, q_j) hits, q_j its
    # observed hit share: drawn directly, so memory does not grow with R.
    share = outcomes.mean(axis=0)
    means = rng.binomial(repeats, share[columns]).sum(axis=1) / (n * repeats)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    point = float(outcomes.mean())
    return min(float(low), point), max(float(high), point)


def holm(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm-Bonferroni step-down: which hypotheses are rejected at family-wise level ``alpha``."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for step, index in enumerate(order):
        if p_values[index] > alpha / (len(p_values) - step):
            break
        rejected[index] = True
    return rejected


def holm_levels(p_values: Sequence[float], alpha: float) -> list[float]:
    """The Holm level each hypothesis is compared with (``alpha / (K - rank)``)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    levels = [0.0] * len(p_values)
    for step, index in enumerate(order):
        levels[index] = alpha / (len(p_values) - step)
    return levels


def required_models(alpha: float, methods: int, decide_by: str) -> int:
    """The fewest calibration models with which ``decide_by`` can reject at Holm's first step."""
    if decide_by == "rank":
        return math.ceil(methods / alpha) - 1  # 1 / (n + 1) <= alpha / K
    return MIN_PARAMETRIC_MODELS


def check_calibration_size(n: int, alpha: float, methods: int, decide_by: str) -> None:
    """``UserError`` (one line, with the number needed) when ``n`` models cannot support
    ``alpha`` across ``methods`` methods with ``decide_by``."""
    if decide_by not in DECIDERS[2:]:
        raise UserError(f"--decide-by must be one of {', '.join(DECIDERS)}; got {decide_by!r}")
    if not 0.0 < alpha < 1.0:
        raise UserError(f"alpha must be in (0, 1); got {alpha}")
    needed = required_models(alpha, methods, decide_by)
    if n < needed:
        how = (f"a rank p-value cannot go below 1/(n+1), and Holm's first level is alpha/"
               f"{methods} = {alpha / methods:.4g}" if decide_by == "rank"
               else "the parametric null needs a spread to estimate")
        raise UserError(f"the calibration has {n} models; deciding by {decide_by} at alpha "
                        f"{alpha:g} over {methods} method(s) needs at least {needed} ({how})")


def decide(methods: Sequence[dict[str, Any]], alpha: float) -> tuple[list[str], str]:
    """Three-way verdicts per method and the overall one (see the module docstring).

    Each method dict holds ``p_at_low`` and ``p_at_high``: its p-value at the lower and at the
    upper end of the suspect's interval.
    """
    if not methods:
        raise ValueError("no methods to decide")
    stolen = holm([m["p_at_low"] for m in methods], alpha)
    possible = holm([m["p_at_high"] for m in methods], alpha)
    verdicts = ["stolen" if s else ("inconclusive" if p else "not_proven")
                for s, p in zip(stolen, possible, strict=True)]
    overall = ("stolen" if "stolen" in verdicts
               else "inconclusive" if "inconclusive" in verdicts else "not_proven")
    return verdicts, overall
