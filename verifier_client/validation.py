"""Out-of-sample validation of the verdict procedure on a population (docs/methods.md,
"Verdicts"): how often it accuses innocent models it never saw, and how often it catches each
kind of pirate, at a family-wise ``alpha``.

* **held-out**: calibrate on all calibration negatives, decide every held-out negative and
  every positive (the same code as ``verify``: ``verifier_client.decision``);
* **leave-one-out**: for each calibration negative, calibrate on the others and decide it.

Each model's outcomes (bool ``[repeats, N]`` per set) are measured once (``population``) or read
from ``roc``'s ``outcomes.npz``. Reported beside the new procedure: the legacy threshold rule
(the calibration's ``threshold``, "stolen" when any method's mean rate is above it), so the
improvement, or its absence, is a measurement.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.atomic import write_json, write_text
from models.provenance import code_version, utc_now
from verifier_client.calibration import calibration_entry
from verifier_client.decision import decide_rows, method_row
from verifier_client.fingerprint_set import FingerprintSet
from verifier_client.population import Outcomes


def calibration_from(outcomes: Outcomes, names: Sequence[str], sets: Sequence[FingerprintSet],
                     alpha: float) -> dict[str, dict[str, Any]]:
    """Per method the calibration record of ``names`` (their mean rates), as ``calibrate``
    would write it."""
    return {fset.method: calibration_entry(
        fset.method, [float(outcomes[n][fset.method].mean()) for n in names], list(names),
        n_fingerprints=fset.n, alpha=alpha) for fset in sets}


def decide_model(outcomes: dict[str, np.ndarray], sets: Sequence[FingerprintSet],
                 entries: dict[str, dict[str, Any]], alpha: float, decide_by: str,
                 seed: int) -> dict[str, Any]:
    """The overall verdict of one model and its methods' verdicts, plus the legacy rule's."""
    rows = [method_row(fset, entries[fset.method], outcomes[fset.method], decide_by=decide_by,
                       seed=seed) for fset in sets]
    overall = decide_rows(rows, alpha, decide_by)
    return {"verdict": overall["verdict"],
            "methods": {r["method"]: r["verdict"] for r in rows},
            "rates": {r["method"]: round(r["mr_mean"], 4) for r in rows},
            "legacy_verdict": "stolen" if any(r["threshold_verdict"] == "stolen" for r in rows)
            else "not_proven",
            "legacy_methods": [r["method"] for r in rows if r["threshold_verdict"] == "stolen"]}


def validate(outcomes: Outcomes, sets: Sequence[FingerprintSet], calibration: Sequence[str],
             heldout: Sequence[str], categories: dict[str, list[str]], *, alpha: float = 0.01,
             decide_by: str = "parametric", seed: int = 0) -> dict[str, Any]:
    """Decide every model as described in the module docstring; the JSON-ready report."""
    entries = calibration_from(outcomes, calibration, sets, alpha)
    models: dict[str, Any] = {}
    for name in [*heldout, *(m for names in categories.values() for m in names)]:
        models[name] = decide_model(outcomes[name], sets, entries, alpha, decide_by, seed)
    loo = {}
    for name in calibration:
        others = [n for n in calibration if n != name]
        loo[name] = decide_model(outcomes[name], sets, calibration_from(outcomes, others, sets,
                                                                        alpha),
                                 alpha, decide_by, seed)
    return {"alpha": alpha, "decide_by": decide_by, "seed": seed,
            "methods": [s.method for s in sets],
            "heldout": _negatives(models, heldout), "leave_one_out": _negatives(loo, calibration),
            "positives": {category: _positives(models, names)
                          for category, names in categories.items()},
            "models": models, "loo_models": loo,
            "code_version": code_version(), "time": utc_now()}


def _count(decisions: dict[str, Any], names: Sequence[str], key: str, value: str) -> list[str]:
    return [n for n in names if decisions[n][key] == value]


def exact_interval(successes: int, trials: int, level: float = 0.95) -> list[float]:
    """Clopper-Pearson interval of a rate (each model one independent trial): with 0 of 16
    accused the upper end is 21%, which is all that 16 models can show about a 1% rate."""
    from scipy.stats import binomtest

    ci = binomtest(successes, trials).proportion_ci(confidence_level=level, method="exact")
    return [float(ci.low), float(ci.high)]


def _negatives(decisions: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    accused = _count(decisions, names, "verdict", "stolen")
    return {"models": len(names), "accused": accused,
            "inconclusive": _count(decisions, names, "verdict", "inconclusive"),
            "false_accusation_rate": len(accused) / len(names),
            "false_accusation_interval": exact_interval(len(accused), len(names)),
            "legacy_accused": _count(decisions, names, "legacy_verdict", "stolen")}


def _positives(decisions: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    caught = _count(decisions, names, "verdict", "stolen")
    return {"models": list(names), "caught": caught, "tpr": len(caught) / len(names),
            "tpr_interval": exact_interval(len(caught), len(names)),
            "inconclusive": _count(decisions, names, "verdict", "inconclusive"),
            "legacy_caught": _count(decisions, names, "legacy_verdict", "stolen")}


def to_markdown(report: dict[str, Any]) -> str:
    """False accusations against nominal, then the catch rate per attack category."""
    alpha = report["alpha"]
    lines = [f"Family-wise alpha {alpha:g} over {len(report['methods'])} methods "
             f"({', '.join(report['methods'])}), deciding by {report['decide_by']}.", "",
             "| innocent models | models | accused (nominal <= "
             f"{alpha:g}) | 95% interval (Clopper-Pearson) | inconclusive | accused by the "
             "legacy threshold rule |",
             "|---|---:|---|---|---:|---|"]
    for label, key in (("held-out negatives", "heldout"),
                       ("leave-one-out over the calibration negatives", "leave_one_out")):
        row = report[key]
        lines.append(f"| {label} | {row['models']} | {len(row['accused'])} "
                     f"({row['false_accusation_rate']:.1%}){_names(row['accused'])} | "
                     f"{_interval(row['false_accusation_interval'])} | "
                     f"{len(row['inconclusive'])} | {len(row['legacy_accused'])} "
                     f"({len(row['legacy_accused']) / row['models']:.1%})"
                     f"{_names(row['legacy_accused'])} |")
    lines += ["", "| attack | models | caught (stolen) | 95% interval | inconclusive | caught "
              "by the legacy rule |", "|---|---:|---:|---|---:|---:|"]
    for category, row in report["positives"].items():
        n = len(row["models"])
        lines.append(f"| {category} | {n} | {len(row['caught'])} ({row['tpr']:.0%}) | "
                     f"{_interval(row['tpr_interval'])} | "
                     f"{len(row['inconclusive'])} | {len(row['legacy_caught'])} |")
    lines += ["", "Each model is one trial; the intervals are exact binomial (Clopper-Pearson) "
              "over models, so a handful of models bounds a rate only loosely."]
    return "\n".join(lines) + "\n"


def _interval(bounds: Sequence[float]) -> str:
    return f"[{bounds[0]:.0%}, {bounds[1]:.0%}]"


def _names(names: Sequence[str]) -> str:
    return f": {', '.join(names)}" if names else ""


def to_csv(report: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["model", "set", "verdict", "legacy_verdict", *report["methods"]])
    for group, key in (("evaluated", "models"), ("leave-one-out", "loo_models")):
        for name, decision in report[key].items():
            writer.writerow([name, group, decision["verdict"], decision["legacy_verdict"],
                             *(decision["methods"][m] for m in report["methods"])])
    return buffer.getvalue()


def write_outputs(report: dict[str, Any], out: Path) -> list[Path]:
    paths = [out / "validation.json", out / "validation.md", out / "validation.csv"]
    write_json(paths[0], report)
    write_text(paths[1], to_markdown(report))
    write_text(paths[2], to_csv(report))
    return paths
