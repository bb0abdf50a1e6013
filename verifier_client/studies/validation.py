"""Out-of-sample validation of the shipped verdict procedure (docs/methods.md, "Verdicts"): how
often it accuses innocent models it never saw, served as they are and behind randomized fronts,
and how often it catches each kind of pirate, at a family-wise ``alpha``.

The procedure validated is the one ``verify --adaptive`` runs: a suspect that answers at random
(served behind a front, or with randomized preprocessing of its own) is verified with the EOT
sets against their front-matched calibration, under that calibration's protocol (votes,
repeats); any other suspect with the plain sets against the plain calibration. The calibration
files are the shipped ones; nothing here is fitted on a model it then judges:

* **held-out**: every held-out negative, as it is (``none``) and behind each ``serve_behind``
  front (e.g. CSRP at the zoo's setting and at two other members of the family);
* **leave-one-out**: every calibration negative behind each front, decided against the
  calibration without it (its own rates removed and the nulls refitted);
* **positives**: every pirate as the zoo serves it (its own preprocessing).

Suspects are measured in-process with the serving path's semantics (``models.transforms`` as the
server applies them; ``population.local_outcomes``): each suspect draws its own front
randomness, seeded from its name and front so a run replays. A suspect counts as randomized when
its serving path has a random transform (what ``probe`` detects over HTTP). Measured outcomes
are kept in ``<out>/cache`` so an interrupted run resumes.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.atomic import write_bytes, write_json, write_text
from models.errors import UserError
from models.provenance import code_version, utc_now
from verifier_client.calibration import calibration_entry, protocol_of
from verifier_client.decision import decide_rows, member_nulls, method_row
from verifier_client.fingerprint_set import FingerprintSet
from verifier_client.protocol import Protocol, member_text
from verifier_client.verification import calibration_for_sets

Outcomes = dict[str, np.ndarray]  # method -> bool [repeats, N]


@dataclass(frozen=True)
class VerificationPath:
    """Sets, their calibration records (by method) and the protocol they were measured under."""

    name: str
    sets: tuple[FingerprintSet, ...]
    entries: dict[str, dict[str, Any]]
    protocol: Protocol

    @classmethod
    def load(cls, name: str, sets: Sequence[FingerprintSet],
             calibration: dict[str, Any]) -> VerificationPath:
        return cls(name, tuple(sets), calibration_for_sets(sets, calibration, name),
                   protocol_of(calibration))

    def without(self, model: str) -> dict[str, dict[str, Any]]:
        """The calibration records with ``model`` left out (nulls refitted on the others)."""
        entries = {}
        for method, entry in self.entries.items():
            names = list(entry["independent_names"])
            if model not in names:
                raise UserError(f"{model} is not a calibration negative of {self.name}")
            keep = [i for i, n in enumerate(names) if n != model]
            by_front = {m.front: [m.rates[i] for i in keep] for m in member_nulls(entry)}
            refit = calibration_entry(method, by_front, [names[i] for i in keep],
                                      n_fingerprints=entry["n"], alpha=entry["alpha"],
                                      rule=entry["rule"])
            entries[method] = {**copy.deepcopy(entry), **refit}
        return entries


@dataclass
class CacheCount:
    """How many measurements a run took from its cache and how many it made, so its record
    says when its numbers were measured by an earlier run (same model, sets and protocol)."""

    reused: int = 0
    measured: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"reused": self.reused, "measured": self.measured}


def measure_suspect(entry: Any, path: VerificationPath, front: dict[str, Any] | None,
                    cache: Path | None, count: CacheCount | None = None) -> Outcomes:
    """Outcomes of one repository entry behind ``front`` (``None``: its own preprocessing)
    under ``path``'s protocol, from the cache when it was measured before."""
    count = count if count is not None else CacheCount()
    from verifier_client.studies.population import local_outcomes

    protocol = path.protocol
    key = json.dumps([entry.name, member_text(front), protocol.to_dict(),
                      [s.sha256 for s in path.sets]], sort_keys=True)
    file = None
    if cache is not None:
        file = cache / f"{entry.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
        if file.is_file():
            count.reused += 1
            with np.load(file, allow_pickle=False) as archive:
                return {k: archive[k] for k in archive.files}
    count.measured += 1
    seed = int.from_bytes(hashlib.sha256(f"{entry.name}|{member_text(front)}".encode())
                          .digest()[:6], "big")
    found = local_outcomes(entry, path.sets, protocol.repeats, seed, protocol.votes,
                           front=front)
    if file is not None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **found)
        write_bytes(file, buffer.getvalue())
    return found


def decide_suspect(outcomes: Outcomes, path: VerificationPath, alpha: float, decide_by: str,
                   seed: int, entries: dict[str, dict[str, Any]] | None = None
                   ) -> dict[str, Any]:
    """The overall verdict of one suspect and its methods' verdicts (the ``verify`` code)."""
    entries = entries or path.entries
    rows = [method_row(fset, entries[fset.method], outcomes[fset.method], decide_by=decide_by,
                       seed=seed) for fset in path.sets]
    overall = decide_rows(rows, alpha, decide_by, entries)
    decision = {"verdict": overall["verdict"], "path": path.name,
                "decided_by": overall["decided_by"],
                "methods": {r["method"]: r["verdict"] for r in rows},
                "rates": {r["method"]: round(r["mr_mean"], 4) for r in rows},
                "p_values": {r["method"]: r["p_value"] for r in rows}}
    if "combined" in overall:
        decision["combined_p"] = overall["combined"]["p_value"]
    return decision


def is_randomized(spec: dict[str, Any] | None) -> bool:
    """Whether a suspect served behind ``spec`` answers at random (what ``probe`` detects over
    HTTP): a registered transform that draws parameters; deterministic ones (median smoothing,
    bit-depth reduction) and a query detector do not."""
    if spec is None:
        return False
    from models.transforms import transform_class

    return transform_class(spec.get("name")).randomized


@dataclass(frozen=True)
class Validation:
    """What to validate: the plain path, the front path (``None``: randomized suspects cannot
    be verified and are reported as refused), the fronts innocents are served behind."""

    plain: VerificationPath
    front: VerificationPath | None
    serve_behind: tuple[dict[str, Any] | None, ...] = (None,)
    alpha: float = 0.01
    decide_by: str = "auto"
    seed: int = 0
    cache: Path | None = None
    count: CacheCount = field(default_factory=CacheCount)

    def path_for(self, randomized: bool) -> VerificationPath | None:
        return self.front if randomized else self.plain

    def judge(self, entry: Any, front: dict[str, Any] | None,
              leave_out: str | None = None) -> dict[str, Any]:
        """Measure and decide one suspect served behind ``front`` (or its own preprocessing)."""
        spec = front if front is not None else entry.config.preprocessing
        path = self.path_for(is_randomized(spec))
        if path is None:
            return {"verdict": "refused", "path": None,
                    "reason": "randomized, and no front-matched calibration was given"}
        outcomes = measure_suspect(entry, path, front, self.cache, self.count)
        entries = path.without(leave_out) if leave_out else None
        return decide_suspect(outcomes, path, self.alpha, self.decide_by, self.seed, entries)


def validate(zoo: Path, validation: Validation, heldout: Sequence[str],
             calibration: Sequence[str], categories: dict[str, list[str]],
             on_model: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Decide every model as the module docstring says; the JSON-ready report."""
    from models.repository import Entry

    tick = on_model or (lambda name: None)
    groups: dict[str, dict[str, Any]] = {}
    for front in validation.serve_behind:
        label = member_text(front)
        decisions = {}
        for name in heldout:
            decisions[name] = validation.judge(Entry.load(zoo / name), front)
            tick(f"{name} behind {label}")
        groups[f"heldout behind {label}"] = {"front": front, "kind": "heldout",
                                             "models": decisions}
        loo = {}
        path = validation.path_for(is_randomized(front))
        if path is not None:
            for name in calibration:
                loo[name] = validation.judge(Entry.load(zoo / name), front, leave_out=name)
                tick(f"{name} (left out) behind {label}")
            groups[f"leave-one-out behind {label}"] = {"front": front, "kind": "leave_one_out",
                                                       "models": loo}
    positives = {}
    for category, names in categories.items():
        decisions = {}
        for name in names:
            decisions[name] = validation.judge(Entry.load(zoo / name), None)
            tick(name)
        positives[category] = decisions
    return {"alpha": validation.alpha, "decide_by": validation.decide_by,
            "seed": validation.seed,
            "paths": {p.name: {"methods": [s.method for s in p.sets],
                               "protocol": p.protocol.to_dict(),
                               "calibration_models": len(next(iter(p.entries.values()))[
                                   "independent_names"])}
                      for p in (validation.plain, validation.front) if p is not None},
            "negatives": {label: {**{k: v for k, v in group.items() if k != "models"},
                                  **_negatives(group["models"])}
                          for label, group in groups.items()},
            "positives": {category: _positives(decisions)
                          for category, decisions in positives.items()},
            "models": {label: group["models"] for label, group in groups.items()},
            "positive_models": positives, "cache": validation.count.to_dict(),
            "code_version": code_version(), "time": utc_now()}


def exact_interval(successes: int, trials: int, level: float = 0.95) -> list[float]:
    """Clopper-Pearson interval of a rate (each model one independent trial): with 0 of 48
    accused the upper end is 7.4%, which is all that 48 models can show about a 1% rate."""
    from scipy.stats import binomtest

    ci = binomtest(successes, trials).proportion_ci(confidence_level=level, method="exact")
    return [float(ci.low), float(ci.high)]


def _with(decisions: dict[str, Any], verdict: str) -> list[str]:
    return [n for n, d in decisions.items() if d["verdict"] == verdict]


def _negatives(decisions: dict[str, Any]) -> dict[str, Any]:
    accused, n = _with(decisions, "stolen"), len(decisions)
    return {"count": n, "accused": accused, "inconclusive": _with(decisions, "inconclusive"),
            "refused": _with(decisions, "refused"),
            "false_accusation_rate": len(accused) / n if n else 0.0,
            "false_accusation_interval": exact_interval(len(accused), n) if n else [0.0, 1.0]}


def _positives(decisions: dict[str, Any]) -> dict[str, Any]:
    caught, n = _with(decisions, "stolen"), len(decisions)
    return {"models": list(decisions), "caught": caught, "tpr": len(caught) / n,
            "tpr_interval": exact_interval(len(caught), n),
            "inconclusive": _with(decisions, "inconclusive"),
            "refused": _with(decisions, "refused"),
            "not_caught": [m for m in decisions if m not in caught]}


def to_markdown(report: dict[str, Any]) -> str:
    """False accusations per group against nominal, then the catch rate per attack category."""
    alpha = report["alpha"]
    paths = "; ".join(f"{name}: {', '.join(p['methods'])} against {p['calibration_models']} "
                      f"calibration negatives ({Protocol.from_dict(p['protocol']).describe()})"
                      for name, p in report["paths"].items())
    lines = [f"Family-wise alpha {alpha:g}, deciding by {report['decide_by']}. {paths}.", "",
             f"| innocent models | served behind | models | accused (nominal <= {alpha:g}) | "
             "95% interval (Clopper-Pearson) | inconclusive |",
             "|---|---|---:|---|---|---:|"]
    for row in report["negatives"].values():
        kind = "held-out negatives" if row["kind"] == "heldout" else \
            "calibration negatives, each left out"
        lines.append(f"| {kind} | {member_text(row['front'])} | {row['count']} | "
                     f"{len(row['accused'])} ({row['false_accusation_rate']:.1%})"
                     f"{_names(row['accused'])} | "
                     f"{_interval(row['false_accusation_interval'])} | "
                     f"{len(row['inconclusive'])} |")
    lines += ["", "| attack | models | caught (stolen) | 95% interval | not caught |",
              "|---|---:|---:|---|---|"]
    for category, row in report["positives"].items():
        n = len(row["models"])
        lines.append(f"| {category} | {n} | {len(row['caught'])} ({row['tpr']:.0%}) | "
                     f"{_interval(row['tpr_interval'])} | "
                     f"{', '.join(row['not_caught']) or '-'} |")
    lines += ["", "Each model is one trial; the intervals are exact binomial (Clopper-Pearson) "
              "over models: 0 accused of 48 bounds the rate at 7.4%, of 100 at 3.6%."]
    return "\n".join(lines) + "\n"


def _interval(bounds: Sequence[float]) -> str:
    return f"[{bounds[0]:.1%}, {bounds[1]:.1%}]"


def _names(names: Sequence[str]) -> str:
    return f": {', '.join(names)}" if names else ""


def to_csv(report: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["group", "model", "verdict", "path", "combined_p"])
    groups = [*report["models"].items(), *report["positive_models"].items()]
    for group, decisions in groups:
        for name, decision in decisions.items():
            writer.writerow([group, name, decision["verdict"], decision.get("path"),
                             decision.get("combined_p", "")])
    return buffer.getvalue()


def write_outputs(report: dict[str, Any], out: Path) -> list[Path]:
    paths = [out / "validation.json", out / "validation.md", out / "validation.csv"]
    write_json(paths[0], report)
    write_text(paths[1], to_markdown(report))
    write_text(paths[2], to_csv(report))
    return paths
