"""From a suspect's matching outcomes to verdicts: one row per method and one overall verdict.

Pure functions on outcome matrices (bool ``[repeats, N]``, a fingerprint set's answers over the
repeats) and calibration records, shared by ``verify`` (remote), the demo and the out-of-sample
validation (in-process), so all three decide identically. The statistics are
``verifier_client.verdict``; which rule decides and why is docs/methods.md, "Verdicts".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from models.errors import UserError
from verifier_client.calibration import NullFit, empirical_p_value, thresholds_for
from verifier_client.verdict import (
    DEFAULT_ALPHA,
    LogitNormalNull,
    bootstrap_interval,
    check_calibration_size,
    combined_models_needed,
    combined_p_value,
    decide,
    holm_levels,
    logit,
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


@dataclass(frozen=True)
class MemberNull:
    """A method's null under one front of the calibration's protocol: the negatives' rates and
    their logit-normal fit."""

    front: str
    rates: tuple[float, ...]
    null: LogitNormalNull

    def p_value(self, rate: float, parametric: bool) -> float:
        return self.null.p_value(rate) if parametric else rank_p_value(self.rates, rate)


def member_nulls(entry: dict[str, Any]) -> list[MemberNull]:
    """Every front's null of a method (one, ``none``, for a calibration without a front or one
    written before fronts were recorded)."""
    n_fp = int(entry.get("n") or 100)
    if not entry.get("members"):
        return [MemberNull("none", tuple(entry["independent_rates"]), null_of(entry))]
    return [MemberNull(str(m["front"]), tuple(float(r) for r in m["rates"]),
                       LogitNormalNull.from_dict(m["null"]) if "null" in m
                       else LogitNormalNull.fit(m["rates"], n_fp))
            for m in entry["members"]]


def worst_shapiro(nulls: Sequence[MemberNull]) -> float | None:
    """The smallest Shapiro-Wilk p over a method's fronts (``None``: never tested)."""
    values = [m.null.shapiro_p for m in nulls if m.null.shapiro_p is not None]
    return min(values) if values else None


def normal_model_ok(nulls: Sequence[MemberNull]) -> bool:
    """Whether the logit-normal null holds behind every front; one rejection means the method
    decides by rank."""
    worst = worst_shapiro(nulls)
    return worst is None or worst >= NORMALITY_LEVEL


def method_row(fset: SetInfo, entry: dict[str, Any], outcomes: np.ndarray,
               failures: Sequence[str] = (), *, planned: int | None = None,
               decide_by: str = "parametric", seed: int = 0,
               rule: str | None = None) -> dict[str, Any]:
    """One method's row: the suspect's rate, its interval, both p-values, the p-values at the
    interval's ends (what the decision uses) and the legacy threshold verdict.

    Behind a front family every p-value is the largest over the calibration's fronts (the
    least favourable one decides); ``least_favourable`` names it."""
    outcomes = np.asarray(outcomes, dtype=bool)
    outcomes = outcomes.reshape(-1, outcomes.shape[-1] if outcomes.ndim else fset.n)
    rates = outcomes.mean(axis=1)
    calibration = [float(r) for r in entry["independent_rates"]]
    nulls = member_nulls(entry)
    null = null_of(entry)
    fit = NullFit.from_dict(entry["fit"])
    threshold, how = float(entry["threshold"]), str(entry["threshold_method"])
    if rule is not None:
        _, threshold, how = thresholds_for(calibration, fit, float(entry["alpha"]),
                                           rule)  # type: ignore[arg-type]
    normal_ok = normal_model_ok(nulls)
    per_method = "parametric" if decide_by in ("parametric", "combined", "auto") else "rank"
    deciding = per_method if normal_ok else "rank"
    parametric = deciding == "parametric"

    def p_of(rate: float, use_parametric: bool = parametric) -> float:
        return max(m.p_value(rate, use_parametric) for m in nulls)

    mean = float(rates.mean())
    low, high = bootstrap_interval(outcomes, seed, fingerprints=False)
    wide = bootstrap_interval(outcomes, seed, fingerprints=True)
    by_front = {m.front: m.p_value(mean, parametric) for m in nulls}
    row: dict[str, Any] = {
        "method": fset.method, "n": fset.n, "repeats": int(rates.size),
        "queries_per_repeat": int(getattr(fset, "query_count", fset.n)),
        "outcomes_per_repeat": int(outcomes.shape[1]),
        "repeats_failed": len(failures), "repeats_planned": planned or int(rates.size),
        "independent_min": min(calibration), "independent_max": max(calibration),
        "independent_models": len(calibration),
        "threshold": threshold, "threshold_method": how, "threshold_verdict": "not_proven",
        "set_file": fset.name, "set_sha256": fset.sha256,
        "rates": [round(float(r), 6) for r in rates], "failures": list(failures[:_MAX_REASONS]),
        "null": {**null.to_dict(), "normal_model_ok": normal_ok},
        "decided_by": deciding, "rank_p_floor": 1.0 / (len(calibration) + 1),
        "fronts": len(nulls), "p_value_by_front": by_front,
        "least_favourable": max(by_front, key=lambda k: by_front[k])}
    row.update(
        mr_mean=mean, mr_std=float(rates.std(ddof=1)) if rates.size > 1 else 0.0,
        mr_min=float(rates.min()), mr_max=float(rates.max()),
        interval=[low, high], interval_confidence=0.95,
        interval_over_fingerprints=[wide[0], wide[1]],
        p_value=p_of(mean), p_value_parametric=p_of(mean, True),
        p_value_empirical=empirical_p_value(calibration, mean),
        p_value_rank=p_of(mean, False),
        p_at_low=p_of(low), p_at_high=p_of(high),
        threshold_verdict="stolen" if mean > threshold else "not_proven",
        saturated=bool(rates.size >= 2 and (outcomes == outcomes[:1]).all()))
    return row


def combined_test(rows: Sequence[dict[str, Any]], entries: dict[str, dict[str, Any]],
                  how: str = "mean") -> dict[str, Any]:
    """The combined statistic across the rows' methods (``verdict.combined_p_value``) against
    the calibration negatives, under every front of the calibration; the p-value is the
    largest (the least favourable front decides)."""
    methods = [r["method"] for r in rows]
    first = entries[methods[0]]
    names = list(first["independent_names"])
    fronts = [m.front for m in member_nulls(first)]
    for method in methods:
        entry = entries[method]
        if list(entry["independent_names"]) != names or \
                [m.front for m in member_nulls(entry)] != fronts:
            raise UserError(f"the combined test needs every method calibrated on the same "
                            f"models and fronts; {method!r} differs from {methods[0]!r}")
    suspect = np.array([logit(r["mr_mean"], r["n"]) for r in rows])
    by_front = {}
    for index, front in enumerate(fronts):
        table = np.array([[logit(rate, int(entries[m].get("n") or 100))
                           for rate in member_nulls(entries[m])[index].rates]
                          for m in methods]).T
        by_front[front] = combined_p_value(table, suspect, how)
    p = max(by_front.values())
    return {"statistic": f"{how} of standardised logit rates over {len(methods)} method(s)",
            "models": len(names), "p_value": p, "p_value_by_front": by_front,
            "least_favourable": max(by_front, key=lambda k: by_front[k]),
            "p_floor": 1.0 / (len(names) + 1)}


def _resolve(decide_by: str, models: int, alpha: float) -> tuple[str, str | None]:
    """``auto`` is ``combined`` when the calibration has enough models for a rank p-value to
    reach ``alpha``, else ``parametric``; the note says why when it falls back."""
    if decide_by != "auto":
        return decide_by, None
    needed = combined_models_needed(alpha)
    if models >= needed:
        return "combined", None
    return "parametric", (f"the combined rank test needs {needed} calibration models to reach "
                          f"alpha {alpha:g} and this calibration has {models}: deciding by the "
                          "parametric nulls (Holm) instead")


def decide_rows(rows: list[dict[str, Any]], alpha: float = DEFAULT_ALPHA,
                decide_by: str = "parametric", entries: dict[str, dict[str, Any]] | None = None,
                combine: str = "mean") -> dict[str, Any]:
    """Fill every row's ``verdict``, ``holm_level``, ``boundary`` and ``reach``; the overall
    verdict with the error rate it guarantees.

    ``decide_by``: ``parametric`` or ``rank`` (Holm over the methods), ``combined`` (the
    combined rank test decides the overall verdict; per-method Holm verdicts are tested only
    once it rejects, a fixed sequence that keeps the family-wise rate at ``alpha``; ``entries``
    must be given), or ``auto`` (combined when the calibration has enough models)."""
    models = min(r["independent_models"] for r in rows)
    decide_by, note = _resolve(decide_by, models, alpha)
    if decide_by == "combined":
        if entries is None:
            raise ValueError("deciding by the combined test needs the calibration entries")
        needed = combined_models_needed(alpha)
        if models < needed:
            raise UserError(f"the calibration has {models} models; the combined rank test at "
                            f"alpha {alpha:g} needs at least {needed} (its p-value cannot go "
                            f"below 1/(n+1) = {1 / (models + 1):.4g})")
    else:
        check_calibration_size(models, alpha, len(rows), decide_by)
    verdicts, overall = decide(rows, alpha)
    levels = holm_levels([r["p_at_low"] for r in rows], alpha)
    for row, verdict, level in zip(rows, verdicts, levels, strict=True):
        row["verdict"], row["holm_level"] = verdict, level
        null = LogitNormalNull.from_dict(row["null"])
        row["boundary"] = null.boundary(level) if row["decided_by"] == "parametric" else None
        row["reach"] = reach(row, level)
    result: dict[str, Any] = {"alpha": alpha, "methods": len(rows), "decided_by": decide_by}
    if decide_by == "combined":
        assert entries is not None
        test = combined_test(rows, entries, combine)
        gate = test["p_value"] <= alpha
        for row in rows:  # the fixed sequence: no method is "stolen" unless the gate opened
            if row["verdict"] == "stolen" and not gate:
                row["verdict"] = "inconclusive"
        if gate:
            overall = "stolen"
        else:
            overall = "inconclusive" if any(r["verdict"] == "inconclusive" for r in rows) \
                else "not_proven"
        result["combined"] = test
    result.update(verdict=overall,
                  stolen_by=[r["method"] for r in rows if r["verdict"] == "stolen"],
                  guarantee=guarantee(alpha, len(rows), decide_by, models))
    if note:
        result["note"] = note
    return result


def reach(row: dict[str, Any], level: float) -> str | None:
    """Words for a method that can never be called stolen at its Holm ``level`` with the
    calibration it has (rank p-values cannot go below ``1 / (n + 1)``); ``None`` otherwise."""
    if row["decided_by"] != "rank" or row["rank_p_floor"] <= level:
        return None
    why = "its null is not logit-normal (Shapiro-Wilk), so it decides by rank, and " \
        if not row["null"].get("normal_model_ok", True) else ""
    return (f"cannot reach its Holm level {level:.2g}: {why}a rank p-value cannot go below "
            f"1/(n+1) = {row['rank_p_floor']:.2g} with {row['independent_models']} models")


def guarantee(alpha: float, methods: int, decide_by: str, models: int | None = None) -> str:
    """What the overall verdict promises, in one sentence."""
    if decide_by == "combined":
        return (f"an innocent model is called stolen with probability at most {alpha:g}, "
                f"assuming only that it is exchangeable with the {models or 'n'} calibration "
                f"models measured through the same protocol (an exact rank test of one "
                f"statistic over {methods} method(s), the least favourable front deciding); "
                "measured out of sample in the README's validation tables")
    model = ("the logit-normal null of the calibration models (Student-t predictive; "
             "Shapiro-Wilk checked, rank p-values where it is rejected)" if decide_by ==
             "parametric" else "exchangeability with the calibration models (rank p-values)")
    return (f"an innocent model is called stolen with probability at most {alpha:g} across all "
            f"{methods} method(s) (Holm), assuming {model}; measured out of sample in the "
            "README's validation tables")
