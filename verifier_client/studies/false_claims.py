"""The false accuser, measured: how often a claimant's transferable samples get innocent models
called stolen, before and after the protocol's defence.

Liu et al., "False Claims against Model Ownership Resolution" (USENIX Security 2024). The
accuser crafts a set on its own registered model (``generate --method transfer``; never on the
suspect) and claims innocents. Every suspect here is an innocent of the zoo: the held-out
negatives, none of which derives from the accuser's model; any ``stolen`` is a false claim.
Each suspect is measured in-process as served (``population.local_outcomes``) and decided by
the same code as ``verify`` (``decision.method_row`` / ``decide_rows``, ``--decide-by auto``)
against a null made of:

* ``accuser-least-matching``: the ``null_size`` (default 20, what round 2 shipped) models of
  the calibration pool that match the set least: the independents an accuser who is allowed to
  bring its own calibration would pick;
* ``accuser-other-architectures``: the held-out VGG-16s and MobileNets, presented as "the
  independent models", against the ResNet-20 innocents (transfer is weaker across
  architectures, so the null is low);
* ``verifier``: every calibration negative of the zoo, chosen by the verifier, not the accuser
  (the defence: calibrate the claimant's set on independents it did not choose).

The commitment half of the defence (``verifier_client.commitment``) is exercised on the same
set: it commits to the accuser's model (the set was made there, so a committed transferable set
passes), and the same set offered as made on an innocent is refused. Rates are per model with
exact (Clopper-Pearson) 95% intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import UserError
from models.provenance import code_version, utc_now
from verifier_client.calibration import calibration_entry
from verifier_client.decision import decide_rows, method_row
from verifier_client.fingerprint_set import FingerprintSet
from verifier_client.studies.validation import exact_interval

DEFAULT_NULL_SIZE = 20


def measure_rates(zoo: Path, names: Sequence[str], fset: FingerprintSet,
                  tick: Callable[[str], None]) -> dict[str, np.ndarray]:
    """``name -> bool [1, N]`` outcomes of every named entry on ``fset``, as served."""
    from models.repository import Entry
    from verifier_client.studies.population import local_outcomes

    found = {}
    for name in names:
        found[name] = local_outcomes(Entry.load(zoo / name), [fset], 1)[fset.method]
        tick(name)
    return found


def decide_against(fset: FingerprintSet, outcomes: np.ndarray, null: dict[str, float],
                   alpha: float, seed: int = 0) -> dict[str, Any]:
    """The verdict ``verify --decide-by auto`` gives a suspect with ``outcomes`` against a
    calibration whose negatives' rates are ``null`` (name -> rate)."""
    entry = calibration_entry(fset.method, list(null.values()), list(null), n_fingerprints=fset.n,
                              alpha=alpha)
    row = method_row(fset, entry, outcomes, decide_by="auto", seed=seed)
    overall = decide_rows([row], alpha, "auto", {fset.method: entry})
    # Holm over one method decides by the row's null: "rank" when it fails Shapiro-Wilk
    how = overall["decided_by"] if overall["decided_by"] == "combined" else row["decided_by"]
    result = {"verdict": overall["verdict"], "decided_by": how,
              "rate": round(float(np.mean(outcomes)), 4), "p_value": row["p_value"]}
    if "combined" in overall:
        result["combined_p"] = overall["combined"]["p_value"]
    return result


def strategy(label: str, fset: FingerprintSet, null_names: Sequence[str],
             suspects: Sequence[str], outcomes: dict[str, np.ndarray],
             alpha: float) -> dict[str, Any]:
    """Every suspect decided against the named null; the accused share with its interval."""
    null = {n: float(np.mean(outcomes[n])) for n in null_names}
    decisions = {name: decide_against(fset, outcomes[name], null, alpha)
                 for name in suspects if name not in null}
    accused = sorted(n for n, d in decisions.items() if d["verdict"] == "stolen")
    trials = len(decisions)
    values = list(null.values())
    return {"null": label, "null_models": len(null), "null_names": list(null),
            "null_rates": {"min": round(min(values), 4), "mean": round(float(np.mean(values)), 4),
                           "max": round(max(values), 4)},
            "suspects": trials, "accused": len(accused),
            "accused_rate": round(len(accused) / trials, 4) if trials else None,
            "interval_95": exact_interval(len(accused), trials) if trials else None,
            "accused_models": accused,
            "decided_by": sorted({d["decided_by"] for d in decisions.values()}),
            "decisions": decisions}


def commitment_checks(zoo: Path, fset: FingerprintSet, accuser: str, innocent: str,
                      registry: Path) -> dict[str, Any]:
    """Commit the set to the accuser's model (accepted: it was made there) and offer it as made
    on an innocent (refused unless the innocent labels every sample as recorded)."""
    from verifier_client.commitment import check_committed, commit_set

    record = commit_set(fset, zoo / accuser, registry, claimant="accuser")
    check_committed([fset], registry)
    try:
        commit_set(fset, zoo / innocent, registry.with_name(registry.stem + "-innocent.json"),
                   claimant="accuser")
        refused = None
    except UserError as error:
        refused = str(error)
    return {"committed_to": record.model, "model_sha256": record.model_sha256,
            "committed": record.committed.isoformat(), "offered_as_made_on": innocent,
            "refused": refused is not None, "reason": refused}


def false_claims(zoo: Path, fset: FingerprintSet, *, accuser: str, calibration: Sequence[str],
                 heldout: Sequence[str], architectures: dict[str, str], alpha: float = 0.01,
                 null_size: int = DEFAULT_NULL_SIZE, registry: Path | None = None,
                 on_model: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The report (module doc). ``architectures`` maps every held-out name to its arch."""
    if null_size < 5 or null_size > len(calibration):
        raise UserError(f"--null-size must be in 5..{len(calibration)} (the calibration pool)")
    tick = on_model or (lambda name: None)
    outcomes = measure_rates(zoo, [accuser, *calibration, *heldout], fset, tick)
    pool = sorted(calibration, key=lambda n: (float(np.mean(outcomes[n])), n))
    same_arch = [n for n in heldout if architectures[n] == architectures.get(accuser)]
    other_arch = [n for n in heldout if n not in same_arch]
    strategies = [
        strategy("accuser-least-matching", fset, pool[:null_size], heldout, outcomes, alpha),
        strategy("verifier", fset, list(calibration), heldout, outcomes, alpha)]
    if other_arch and same_arch:
        strategies.insert(1, strategy("accuser-other-architectures", fset, other_arch,
                                      same_arch, outcomes, alpha))
    report = {"set": {"name": fset.name, "method": fset.method, "n": fset.n,
                      "sha256": fset.sha256, "parameters": fset.metadata.get("parameters"),
                      "made_on": (fset.metadata.get("target") or {}).get("name")},
              "accuser": accuser, "alpha": alpha,
              "accuser_rate": round(float(np.mean(outcomes[accuser])), 4),
              "innocent_rates": {"calibration_pool": _summary(outcomes, calibration),
                                 "heldout": _summary(outcomes, heldout)},
              "strategies": strategies,
              "code_version": code_version(), "time": utc_now()}
    if registry is not None and heldout:
        report["commitment"] = commitment_checks(zoo, fset, accuser, heldout[0], registry)
    return report


def _summary(outcomes: dict[str, np.ndarray], names: Sequence[str]) -> dict[str, Any]:
    values = [float(np.mean(outcomes[n])) for n in names]
    return {"models": len(values), "min": round(min(values), 4),
            "mean": round(float(np.mean(values)), 4), "max": round(max(values), 4)}


#: each null as a reader names it (the keys stay the JSON's identifiers)
NULL_LABELS = {"accuser-least-matching": "the accuser's: innocents least like the set",
               "accuser-other-architectures": "the accuser's: other architectures",
               "verifier": "the verifier's calibration negatives"}


def to_markdown(report: dict[str, Any]) -> str:
    """The README's table: one row per null, the false-claim rate with its interval."""
    lines = [f"False claims with `{report['set']['name']}` ({report['set']['method']}, "
             f"n={report['set']['n']}, made on `{report['accuser']}`, which matches it at "
             f"{report['accuser_rate']:.2f}; held-out innocents match it at "
             f"{report['innocent_rates']['heldout']['mean']:.2f} on average), alpha "
             f"{report['alpha']:g}:", "",
             "| null (who chose the independents) | models | their rates | innocents judged | "
             "called stolen | rate [95% CI] | decided by |",
             "|---|---:|---|---:|---:|---|---|"]
    for s in report["strategies"]:
        r = s["null_rates"]
        ci = s["interval_95"] or [0, 0]
        null = NULL_LABELS.get(s["null"], s["null"])
        lines.append(f"| {null} | {s['null_models']} | {r['min']:.2f}-{r['max']:.2f} "
                     f"(mean {r['mean']:.2f}) | {s['suspects']} | {s['accused']} | "
                     f"{s['accused_rate']:.1%} [{ci[0]:.1%}, {ci[1]:.1%}] | "
                     f"{', '.join(s['decided_by'])} |")
    c = report.get("commitment")
    if c:
        lines += ["", f"Commitment: the set commits to `{c['committed_to']}` (it was made "
                  f"there); offered as made on `{c['offered_as_made_on']}` it is "
                  f"{'refused' if c['refused'] else 'ACCEPTED'}."]
    return "\n".join(lines) + "\n"
