"""From a suspect's matching outcomes to verdicts: one row per method and one overall verdict.

Pure functions on outcome matrices (bool ``[repeats, N]``, a fingerprint set's answers over the
repeats) and calibration records, shared by ``verify`` (remote), the demo and the out-of-sample
validation (in-process), so all three decide identically. The statistics are
``verifier_client.verdict``; which rule decides and why is docs/methods.md, "Verdicts".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from verifier_client.calibration import NullFit, empirical_p_value, thresholds_for
from verifier_client.verdict import (
    DEFAULT_ALPHA,
    LogitNormalNull,
    bootstrap_interval,
    check_calibration_size,
    decide,
    holm_levels,
    rank_p_value,
)

_MAX_REASONS = 5
#: Shapiro-Wilk p-value below which the normal model of a method is taken as rejected.
NORMALITY_LEVEL = 0.05


class SetInfo(Protocol):
    """What a row records about the set it was measured with."""

    method: str
    n: int
    sha256: str | None

    @property
    def name(self) -> str: ...


def null_of(entry: dict[str, Any]) -> LogitNormalNull:
    """The calibration's logit-normal null for a method (fitted here for an older file)."""
    if "null" in entry:
        return LogitNormalNull.from_dict(entry["null"])
    return LogitNormalNull.fit(entry["independent_rates"], int(entry.get("n") or 100))


def method_row(fset: SetInfo, entry: dict[str, Any], outcomes: np.ndarray,
               failures: Sequence[str] = (), *, planned: int | None = None,
               decide_by: str = "parametric", seed: int = 0,
               rule: str | None = None) -> dict[str, Any]:
    """One method's row: the suspect's rate, its interval, both p-values, the p-values at the
    interval's ends (what the decision uses) and the legacy threshold verdict."""
    outcomes = np.asarray(outcomes, dtype=bool).reshape(-1, fset.n)
    rates = outcomes.mean(axis=1)
    calibration = [float(r) for r in entry["independent_rates"]]
    null = null_of(entry)
    fit = NullFit.from_dict(entry["fit"])
    threshold, how = float(entry["threshold"]), str(entry["threshold_method"])
    if rule is not None:
        _, threshold, how = thresholds_for(calibration, fit, float(entry["alpha"]),
                                           rule)  # type: ignore[arg-type]
    normal_ok = null.shapiro_p is None or null.shapiro_p >= NORMALITY_LEVEL
    deciding = decide_by if normal_ok else "rank"
    row: dict[str, Any] = {
        "method": fset.method, "n": fset.n, "repeats": int(rates.size),
        "repeats_failed": len(failures), "repeats_planned": planned or int(rates.size),
        "independent_min": min(calibration), "independent_max": max(calibration),
        "independent_models": len(calibration),
        "threshold": threshold, "threshold_method": how, "threshold_verdict": "not_proven",
        "set_file": fset.name, "set_sha256": fset.sha256,
        "rates": [round(float(r), 6) for r in rates], "failures": list(failures[:_MAX_REASONS]),
        "null": {**null.to_dict(), "normal_model_ok": normal_ok},
        "decided_by": deciding, "rank_p_floor": 1.0 / (len(calibration) + 1)}
    mean = float(rates.mean())
    low, high = bootstrap_interval(outcomes, seed, fingerprints=False)
    wide = bootstrap_interval(outcomes, seed, fingerprints=True)
    p_of = null.p_value if deciding == "parametric" else (
        lambda rate: rank_p_value(calibration, rate))
    row.update(
        mr_mean=mean, mr_std=float(rates.std(ddof=1)) if rates.size > 1 else 0.0,
        mr_min=float(rates.min()), mr_max=float(rates.max()),
        interval=[low, high], interval_confidence=0.95,
        interval_over_fingerprints=[wide[0], wide[1]],
        p_value=null.p_value(mean), p_value_parametric=null.p_value(mean),
        p_value_empirical=empirical_p_value(calibration, mean),
        p_value_rank=rank_p_value(calibration, mean),
        p_at_low=p_of(low), p_at_high=p_of(high),
        threshold_verdict="stolen" if mean > threshold else "not_proven",
        saturated=bool(rates.size >= 2 and (outcomes == outcomes[:1]).all()))
    return row


def decide_rows(rows: list[dict[str, Any]], alpha: float = DEFAULT_ALPHA,
                decide_by: str = "parametric") -> dict[str, Any]:
    """Fill every row's ``verdict``, ``holm_level`` and ``boundary``; the overall verdict with
    the error rate it guarantees."""
    check_calibration_size(min(r["independent_models"] for r in rows), alpha, len(rows),
                           decide_by)
    verdicts, overall = decide(rows, alpha)
    levels = holm_levels([r["p_at_low"] for r in rows], alpha)
    for row, verdict, level in zip(rows, verdicts, levels, strict=True):
        row["verdict"], row["holm_level"] = verdict, level
        null = LogitNormalNull.from_dict(row["null"])
        row["boundary"] = null.boundary(level) if row["decided_by"] == "parametric" else None
    return {"verdict": overall, "alpha": alpha, "methods": len(rows), "decided_by": decide_by,
            "stolen_by": [r["method"] for r in rows if r["verdict"] == "stolen"],
            "guarantee": guarantee(alpha, len(rows), decide_by)}


def guarantee(alpha: float, methods: int, decide_by: str) -> str:
    """What the overall verdict promises, in one sentence."""
    model = ("the logit-normal null of the calibration models (Student-t predictive; "
             "Shapiro-Wilk checked, rank p-values where it is rejected)" if decide_by ==
             "parametric" else "exchangeability with the calibration models (rank p-values)")
    return (f"an innocent model is called stolen with probability at most {alpha:g} across all "
            f"{methods} method(s) (Holm), assuming {model}; measured out of sample in the "
            "README's validation tables")
