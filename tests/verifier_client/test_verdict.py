"""Verdict statistics (``verifier_client.verdict``) on hand-made and simulated numbers: the
p-values keep their nominal error rate, the intervals respect correlated outcomes, Holm, the
three-way decision, and the calibration-size check."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from models.errors import UserError
from verifier_client.verdict import (
    LogitNormalNull,
    bootstrap_interval,
    check_calibration_size,
    decide,
    holm,
    logit,
    rank_p_value,
)


def test_rank_p_value_and_its_floor() -> None:
    calibration = [0.2, 0.3, 0.4, 0.5]
    assert rank_p_value(calibration, 0.9) == pytest.approx(1 / 5)  # the floor 1/(n+1)
    assert rank_p_value(calibration, 0.35) == pytest.approx(3 / 5)
    assert rank_p_value(calibration, 0.0) == 1.0


def test_parametric_p_value_and_boundary_are_inverse() -> None:
    null = LogitNormalNull.fit([0.40, 0.45, 0.50, 0.55, 0.42, 0.48], n_fingerprints=100)
    assert null.n == 6 and null.shapiro_p is not None
    rates = np.linspace(0.3, 0.95, 14)
    p_values = [null.p_value(r) for r in rates]
    assert all(a > b for a, b in itertools.pairwise(p_values))  # decreasing
    for level in (0.05, 0.01, 0.001):
        assert null.p_value(null.boundary(level)) == pytest.approx(level, rel=1e-6)
    assert null.p_value(1.0) < 1e-4 and null.p_value(0.3) > 0.5


def test_the_predictive_p_value_keeps_its_level_out_of_sample() -> None:
    """Simulated innocent models from a logit-normal null: calibrate on 20, test a 21st; the
    rejection rate at 1% stays at 1% (a fitted quantile would overshoot)."""
    rng = np.random.default_rng(0)
    trials, n, level = 4000, 20, 0.01
    rejected = 0
    for _ in range(trials):
        values = rng.normal(0.0, 0.3, size=n + 1)
        rates = 1.0 / (1.0 + np.exp(-values))
        null = LogitNormalNull.fit(rates[:n].tolist(), n_fingerprints=10_000)
        rejected += null.p_value(float(rates[n])) <= level
    assert abs(rejected / trials - level) < 4 * math.sqrt(level * (1 - level) / trials)


def test_intervals_respect_fingerprints_and_collapse_for_a_deterministic_model() -> None:
    rng = np.random.default_rng(1)
    always = np.zeros((20, 100), dtype=bool)
    always[:, :50] = True  # half the fingerprints always match, half never: deterministic
    assert bootstrap_interval(always, fingerprints=False) == (0.5, 0.5)
    low, high = bootstrap_interval(always, fingerprints=True)
    assert low < 0.45 and high > 0.55  # over fingerprints: about +-2 sqrt(.25 / 100)
    coins = rng.random((20, 100)) < 0.5  # independent coins: the same mean, more noise
    c_low, c_high = bootstrap_interval(coins, fingerprints=False)
    assert c_low < coins.mean() < c_high and c_high - c_low < 0.1
    assert bootstrap_interval(always, seed=3) == bootstrap_interval(always, seed=3)


def test_holm_step_down() -> None:
    assert holm([0.001, 0.04, 0.03], 0.05) == [True, False, False]  # 0.03 > 0.05 / 2
    assert holm([0.001, 0.02, 0.04], 0.05) == [True, True, True]
    assert holm([0.2, 0.001], 0.01) == [False, True]


def test_three_way_decision_and_the_overall_verdict() -> None:
    rows = [{"p_at_low": 1e-5, "p_at_high": 1e-6}, {"p_at_low": 0.2, "p_at_high": 1e-4},
            {"p_at_low": 0.5, "p_at_high": 0.4}]
    verdicts, overall = decide(rows, 0.01)
    assert verdicts == ["stolen", "inconclusive", "not_proven"] and overall == "stolen"
    verdicts, overall = decide(rows[1:], 0.01)
    assert overall == "inconclusive"
    assert decide(rows[2:], 0.01) == (["not_proven"], "not_proven")


def test_too_few_calibration_models_are_refused_with_the_number_needed() -> None:
    with pytest.raises(UserError, match=r"needs at least 599 \(a rank p-value"):
        check_calibration_size(20, 0.01, 6, "rank")
    check_calibration_size(599, 0.01, 6, "rank")
    with pytest.raises(UserError, match="needs at least 5"):
        check_calibration_size(4, 0.01, 6, "parametric")
    check_calibration_size(20, 0.01, 6, "parametric")


def test_logit_keeps_rates_of_zero_and_one_finite() -> None:
    assert logit(1.0, 100) == pytest.approx(math.log(199))
    assert logit(0.0, 100) == pytest.approx(-math.log(199))


def _simulated_p_values(draws: int, n: int, methods: int, seed: int, **kwargs) -> np.ndarray:
    """Combined p-values of an innocent suspect exchangeable with n calibration models: every
    model's methods share a model effect (correlated methods) and heavy-tailed noise."""
    from verifier_client.verdict import combined_p_value

    rng = np.random.default_rng(seed)
    out = np.empty(draws)
    for i in range(draws):
        table = rng.standard_t(3, size=(n + 1, methods)) + rng.normal(size=(n + 1, 1))
        out[i] = combined_p_value(table[:n], table[n], **kwargs)
    return out


@pytest.mark.parametrize("how", ["mean", "max"])
def test_the_combined_rank_test_is_exact_on_exchangeable_nulls(how: str) -> None:
    n, draws = 19, 6000
    p = _simulated_p_values(draws, n, 6, seed=11, how=how)
    for k in (1, 2, 5):
        level = k / (n + 1)
        rate = float((p <= level + 1e-12).mean())
        # exact: P(p <= k/(n+1)) = k/(n+1); 4 binomial standard errors either side
        assert abs(rate - level) < 4 * math.sqrt(level * (1 - level) / draws), (k, rate)


def test_standardising_without_the_suspect_is_not_exact() -> None:
    """The control that shows the test can fail: a statistic standardised on the calibration
    models alone (not a symmetric function of the n + 1 models) misses the nominal rate."""
    rng = np.random.default_rng(5)
    n, draws, hits = 4, 6000, 0
    for _ in range(draws):
        table = rng.normal(size=(n + 1, 3))
        calibration, suspect = table[:n], table[n]
        mean, sd = calibration.mean(0), calibration.std(0, ddof=1)
        scores = ((calibration - mean) / sd).mean(1)
        hits += (1 + np.count_nonzero(scores >= ((suspect - mean) / sd).mean())) / (n + 1) <= 0.2
    assert abs(hits / draws - 0.2) > 4 * math.sqrt(0.2 * 0.8 / draws)


def test_the_combined_test_needs_one_over_alpha_models() -> None:
    from verifier_client.verdict import combined_models_needed, combined_p_value

    assert combined_models_needed(0.01) == 99 and combined_models_needed(0.05) == 19
    rng = np.random.default_rng(0)
    calibration = rng.normal(size=(99, 6))
    assert combined_p_value(calibration, np.full(6, 10.0)) == pytest.approx(0.01)  # the floor
    assert combined_p_value(calibration[:20], np.full(6, 10.0)) == pytest.approx(1 / 21)
