"""The EOT study table: plain and EOT fingerprint sets, with and without votes, on the
population's CSRP pirates and held-out negatives, from the ROC runs that made them.

    python benchmarks/eot_study.py [--runs results/roc,results/roc-eot,...]

Reads each run's roc.json (never recomputes), prints Markdown: per run and method the AUC against
the held-out negatives for CSRP data-free, CSRP fine-tuned and all positives, the TPR at a nominal
1% FPR on the CSRP pirates, the measured held-out FPR at that threshold, the independent band of
the calibration negatives (their [min, max] matching rate), queries per model, and the sets'
generation time and N / K from their metadata. Writes results/eot-study.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CSRP = ("csrp-data-free", "csrp-fine-tuned")


def set_facts(fingerprints: list[dict]) -> dict[str, str]:
    """method -> 'N=.., K=.., t s' from the run's record of its sets."""
    facts = {}
    for entry in fingerprints:
        eot = entry.get("eot") or {}
        seconds = entry.get("generation_seconds")
        facts[entry["method"]] = (f"N={entry.get('n', '?')}, K={eot.get('draws', 1)}"
                                  + (f", {seconds:.0f} s" if seconds else ""))
    return facts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="results/roc,results/roc-votes,results/roc-eot,"
                                          "results/roc-eot-votes")
    parser.add_argument("--out", default="results/eot-study.md")
    args = parser.parse_args()
    lines = ["| sets | votes | method | AUC CSRP data-free | AUC CSRP fine-tuned | AUC all "
             "| TPR@1% CSRP pirates | held-out FPR | independent band | queries/model | set |",
             "|---|---:|---|---:|---:|---:|---:|---:|---|---:|---|"]
    for run in args.runs.split(","):
        path = ROOT / run / "roc.json"
        if not path.is_file():
            lines.append(f"| {run} | | (missing: run it) | | | | | | | | |")
            continue
        record = json.loads(path.read_text())
        fingerprints = record.get("fingerprints", [])
        sets = "EOT" if any(f.get("eot") for f in fingerprints) else "plain"
        facts = set_facts(fingerprints)
        negatives = record["roles"].get("calibration-negative") or []
        for method, result in sorted(record["methods"].items()):
            groups = result["groups"]
            pirates = sum(len(groups[g]["models"]) for g in CSRP)
            caught = sum(groups[g]["tpr"]["0.01"] * len(groups[g]["models"]) for g in CSRP)
            band = [result["scores"][m] for m in negatives if m in result["scores"]]
            lines.append(
                f"| {sets} | {record.get('votes', 1)} | {method} | "
                f"{groups['csrp-data-free']['auc']:.2f} | {groups['csrp-fine-tuned']['auc']:.2f} | "
                f"{groups['all']['auc']:.2f} | {caught / pirates:.0%} | "
                f"{result['heldout_fpr']['0.01']:.0%} | "
                f"[{min(band):.2f}, {max(band):.2f}] | {record.get('queries_per_model')} | "
                f"{facts.get(method, '')} |")
    text = "\n".join(lines) + "\n"
    print(text)
    (ROOT / args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
