"""What each report section's numbers show, in two or three sentences computed from its record.

One function per section key, each taking the JSON record its command wrote and returning plain
text (the template escapes it). The figures quoted are read from the record, so a remade result
never sits under a stale sentence; what the paper claims is fixed text, cited as the seed paper
(``docs/paper.md``: Certain Scale with Random Padding, "CSRP"). A record missing a key the
sentence needs gives no takeaway rather than a wrong one (``takeaway`` returns ``""``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["takeaway"]

Record = dict[str, Any]


def _demo(record: Record) -> str:
    stolen, innocents, missed = [], [], []
    for report in record["reports"]:
        verdict = str(report.get("overall", {}).get("verdict")).replace("_", " ")
        if report.get("role") == "heldout-negative":
            innocents.append(f"{report['model']} ({verdict})")
        elif verdict == "stolen":
            stolen.append(report["model"])
        else:
            missed.append(f"{report['model']} ({verdict})")
    text = (f"Served over HTTP and verified as an owner would, {len(stolen)} of "
            f"{len(stolen) + len(missed)} pirate copies are called stolen"
            + (f" ({', '.join(stolen)})" if stolen else "")
            + (f"; not proven: {', '.join(missed)}" if missed else "") + ". ")
    if innocents:
        text += f"The innocent{'s' if len(innocents) > 1 else ''}: {', '.join(innocents)}. "
    return text + ("Copies behind CSRP are caught through the adaptive path (EOT sets, votes), "
                   "not by the paper's plain methods, which CSRP defeats as the paper reports.")


def _evaluation(record: Record) -> str:
    rows = {row["row"]: row for row in record["rows"]}
    band = rows["independent"]["rates"]
    methods = record["methods"]
    inside = [m for m in methods if rows["CSRP only"]["rates"][m] <= band[m][1]]
    ft_inside = [m for m in methods if rows["CSRP + fine-tuning"]["rates"][m] <= band[m][1]]
    rdg_above = [m for m in methods if rows["RDG"]["rates"][m] > band[m][1]]
    plain = min(rows[r]["rates"][m] for r in ("target", "compression", "fine-tuning",
                                               "pruning 0.1") for m in methods)
    return (f"Unmodified, compressed, fine-tuned and lightly pruned copies match at "
            f"{plain:.2f} or more under every method, far above the independent models. CSRP "
            f"alone puts {len(inside)} of {len(methods)} methods inside the independent band "
            f"and CSRP with fine-tuning {len(ft_inside)} of {len(methods)}: the paper's central "
            f"claim (its Table 3) reproduces. RDG at the same accuracy stays above the band for "
            f"{len(rdg_above)} of {len(methods)} methods, as the paper's comparison says.")


def _roc(record: Record) -> str:
    methods = record["methods"]
    best = max(methods, key=lambda m: methods[m]["groups"]["all"]["auc"])
    students = [g for g in methods[best]["groups"] if g.startswith("distillation")]
    caught = max((methods[m]["groups"][g]["tpr"]["0.01"] for m in methods for g in students),
                 default=0.0)
    top = max(((methods[m]["groups"][g]["auc"], m, g) for m in methods for g in students),
              default=None)
    text = (f"Over every attack, {best} ranks stolen copies above the held-out innocents best "
            f"(AUC {methods[best]['groups']['all']['auc']:.2f}); unmodified, quantized, pruned "
            f"and fine-tuned copies are separated by every method. ")
    if top is not None:
        text += (f"Label-only students are where the methods fail: the best is {top[1]} on "
                 f"{top[2]} (AUC {top[0]:.2f}), and at 1% false positives "
                 f"{'no student is caught' if caught == 0 else f'at most {caught:.0%} are'}. "
                 "The paper does not test extraction.")
    return text


def _validation(record: Record) -> str:
    heldout = [g for g in record["negatives"].values() if g["kind"] == "heldout"]
    accused = sum(len(g["accused"]) for g in heldout)
    n = heldout[0]["count"] if heldout else 0
    upper = max((g["false_accusation_interval"][1] for g in heldout), default=1.0)
    loo = [g for g in record["negatives"].values() if g["kind"] == "leave_one_out"]
    loo_accused = sum(len(g["accused"]) for g in loo)
    caught = {c: v for c, v in record["positives"].items() if not c.startswith("distillation")}
    students = {c: v for c, v in record["positives"].items() if c.startswith("distillation")}
    hit = sum(len(v["caught"]) for v in caught.values())
    total = sum(len(v["models"]) for v in caught.values())
    student_hit = sum(len(v["caught"]) for v in students.values())
    student_total = sum(len(v["models"]) for v in students.values())
    text = (f"{accused} of {n} held-out innocents accused behind each of {len(heldout)} "
            f"fronts (95% upper bound {upper:.1%} per front): the nominal alpha "
            f"{record['alpha']:g} holds out of sample where round 2's null, measured without "
            f"the front, accused 2 of 36. ")
    if loo_accused:
        size = record["paths"]["plain"]["calibration_models"] - 1
        text += (f"Left out of their own null, {loo_accused} calibration negatives are accused "
                 f"over {len(loo)} fronts: one method's parametric tail fitted on {size} "
                 "models, which a rank test on 99 or more negatives would not need. ")
    return text + (f"Caught: {hit} of {total} pirates of the other attacks, {student_hit} of "
                   f"{student_total} label-only students.")


def _fronts(record: Record) -> str:
    rows = record["fronts"]
    verdicts = {row["front"]: row["verdict"]["verdict"] for row in rows}
    escaped = [f for f, v in verdicts.items() if v != "stolen"]
    return (f"Each front is tuned to CSRP's top-1; the copy behind it is still proven stolen "
            f"behind {len(rows) - len(escaped)} of {len(rows)}"
            + (f", not behind {', '.join(escaped)}" if escaped else "") + ". "
            + ("CSRP, the paper's choice, hides the copy here." if "CSRP" in escaped else
               "CSRP, the paper's choice, does not hide the copy from an owner who adapts; at "
               "equal accuracy the fronts that do are others."))


def _false_claims(record: Record) -> str:
    by_null = {s["null"]: s for s in record["strategies"]}
    words = {"accuser-least-matching": "against the accuser's least-matching innocents",
             "accuser-other-architectures": "against the accuser's other architectures",
             "verifier": "against the verifier's own calibration negatives"}
    parts = [f"{s['accused']} of {s['suspects']} innocents called stolen "
             f"{words.get(name, 'against ' + name)}" for name, s in by_null.items()]
    return ("A set crafted to transfer matches innocent models too, so whoever picks the "
            "independent models picks the verdict: " + "; ".join(parts) + ". The verdict is "
            "only as honest as its null; the commitment ties a set to the model it was made on.")


def _eot(record: Record) -> str:
    methods = record["methods"]
    groups = [g for g in ("csrp-data-free", "csrp-fine-tuned")
              if all(g in methods[m]["groups"] for m in methods)]
    aucs = [methods[m]["groups"][g]["auc"] for m in methods for g in groups]
    tprs = [methods[m]["groups"][g]["tpr"]["0.01"] for m in methods for g in groups]
    return (f"Fingerprints made robust to CSRP's draws (expectation over transformation) rank "
            f"the CSRP pirates at AUC {min(aucs):.2f}-{max(aucs):.2f} against the innocents and "
            f"catch {min(tprs):.0%}-{max(tprs):.0%} of them at 1% false positives: the "
            "paper's defence holds against an owner who does not adapt (see the paper's table "
            "above), not against one who does.")


def _tune_defence(record: Record) -> str:
    points = record["points"]
    keys = list(record["fronts"])
    plain = next((k for k in keys if k.startswith("plain")), keys[0])
    eot = next((k for k in keys if k.startswith("eot")), None)
    good = [p for p in points if p["accuracy"] >= 0.85]
    text = (f"Against plain sets the pirate's best setting with top-1 at 0.85 or more brings "
            f"the owner's best rate down to {min(p['best'][plain] for p in good):.2f}. ")
    if eot is not None:
        text += (f"Against EOT sets no setting of the grid goes below "
                 f"{min(p['best'][eot] for p in points):.2f}: the arms race ends with the "
                 "owner ahead, at every accuracy the pirate would sell.")
    return text


def _stability(record: Record) -> str:
    ratios: dict[str, list[float]] = {}
    for row in record["rows"]:
        if "draw" in row:
            ratios.setdefault(row["draw"], []).extend(
                r["std"] / r["binomial_std"] for r in row["rates"].values() if r["binomial_std"])
    shared, own = ratios.get("shared", []), ratios.get("per-sample", [])
    return ("Matching rates over 100 tests of each set, RDG against CSRP at equal accuracy (the "
            "paper's Table 5). With a fresh draw per fingerprint the spread is close to a "
            f"binomial's (std ratio {min(own):.2f}-{max(own):.2f}); with one draw shared by the "
            f"whole set it grows to {min(shared):.2f}-{max(shared):.2f}, which is where the "
            "paper's wide RDG intervals come from.") if shared and own else ""


def _explain(record: Record) -> str:
    groups = {g["group"]: g for g in record["groups"]}
    clean = groups.pop("clean")
    low = min(g["overlap_mean"] for g in groups.values())
    high = max(g["overlap_mean"] for g in groups.values())
    return (f"LIME's top superpixels overlap {clean['overlap_mean']:.2f} before and after one "
            f"CSRP draw on clean images and {low:.2f}-{high:.2f} on fingerprints: the evidence "
            "moves, the paper's explanation of why fingerprints fail behind CSRP (its Figures 4 "
            "and 5), and the label often flips on fingerprints while clean images keep theirs.")


def _loadtest(record: Record) -> str:
    rows = record["overhead"]
    ratios = [row["throughput_ratio"] for row in rows if row.get("throughput_ratio")]
    if not ratios:
        return ""
    return (f"CSRP inside the serving graph costs almost nothing: throughput with it is "
            f"{min(ratios):.2f}-{max(ratios):.2f} of the same model without it, from 1 to "
            f"{max(r['concurrency'] or 0 for r in rows)} concurrent clients on this machine.")


def _peer(record: Record) -> str:
    ratios = record["ratios"]
    parts = []
    for label, name in (("OIP binary / Triton (same body)", "Triton"),
                        ("OIP JSON / MLServer (same body)", "MLServer")):
        if ratios.get(label):
            values = list(ratios[label].values())
            parts.append(f"{min(values):.2f}-{max(values):.2f}x {name}'s requests/s")
    if not parts:
        return ""
    return ("On the same model, the same request bodies and the same cores, this server "
            f"answers {' and '.join(parts)} across the concurrency levels measured.")


TAKEAWAYS: dict[str, Callable[[Record], str]] = {
    "demo": _demo, "evaluation": _evaluation, "roc": _roc, "validation": _validation,
    "fronts": _fronts, "false-claims": _false_claims, "eot": _eot,
    "tune-defence": _tune_defence, "stability": _stability, "explain": _explain,
    "loadtest": _loadtest, "peer": _peer}


def takeaway(key: str, record: Record) -> str:
    """The section's takeaway, or ``""`` when it has none or its record lacks what it needs."""
    function = TAKEAWAYS.get(key)
    if function is None:
        return ""
    try:
        return function(record)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, StopIteration, IndexError):
        return ""
