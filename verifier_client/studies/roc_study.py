"""``roc``: measure a zoo's population with every fingerprint set and report each method's error
rates (``verifier_client.studies.roc``), as JSON, Markdown, CSV, two plots and the raw outcomes."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.atomic import write_bytes, write_json, write_text
from models.provenance import code_version, utc_now
from verifier_client.fingerprint_set import load_sets
from verifier_client.studies.population import Outcomes, measure, save_outcomes
from verifier_client.studies.report_files import DISTINCT_COLOURS, plain_log_ticks, png_bytes
from verifier_client.studies.roc import (
    FINGERPRINT_BUDGETS,
    REPEAT_BUDGETS,
    budget_curves,
    check_budgets,
    heldout_kinds,
    method_report,
    rates,
)


def roc_study(zoo: Path, fingerprints: Path | None = None, *, repeats: int = 20,
              via_server: bool = False, fingerprint_budgets: Sequence[int] = FINGERPRINT_BUDGETS,
              repeat_budgets: Sequence[int] = REPEAT_BUDGETS, subsamples: int = 20,
              seed: int = 0, progress: bool = True,
              votes: int = 1) -> tuple[dict[str, Any], Outcomes]:
    """Measure every entry of the manifest and build the report (see
    ``verifier_client.studies.roc``)."""
    from models.zoo import load_manifest

    manifest = load_manifest(zoo)
    sets = load_sets([fingerprints or zoo / "fingerprints"])
    calibration = manifest.names("calibration-negative")
    heldout = manifest.names("heldout-negative")
    kinds = manifest.heldout_categories()
    categories = manifest.categories()
    n = min(s.n for s in sets)
    check_budgets(n, repeats, fingerprint_budgets, repeat_budgets)
    names = [*calibration, *heldout, *(m for ms in categories.values() for m in ms)]
    started = time.perf_counter()
    outcomes = _measure_with_progress(zoo, names, sets, repeats, seed, via_server, progress,
                                      votes)
    methods = {}
    for fset in sets:
        per_model = {name: outcomes[name][fset.method] for name in names}
        scores = {name: rates(matrix) for name, matrix in per_model.items()}
        summary = method_report(scores, calibration, heldout, categories, seed)
        methods[fset.method] = {
            "scores": {name: round(score, 4) for name, score in scores.items()},
            **summary,
            "heldout_kinds": heldout_kinds(scores, summary["thresholds"], kinds,
                                           summary["groups"]["all"]["models"]),
            "budgets": budget_curves(per_model, calibration, heldout, categories,
                                     fingerprint_budgets, repeat_budgets, subsamples, seed)}
    report = {
        "zoo": str(zoo), "manifest_sha256": manifest.sha256, "via_server": via_server,
        "repeats": repeats, "votes": votes, "queries_per_model": repeats * votes * sum(
            s.n for s in sets), "seed": seed, "code_version": code_version(), "time": utc_now(),
        "seconds": round(time.perf_counter() - started, 1),
        "fingerprints": [{"method": s.method, "file": s.name, "sha256": s.sha256, "n": s.n,
                          "seed": s.metadata.get("seed"), "eot": s.metadata.get("eot"),
                          "generation_seconds": s.metadata.get("generation_seconds")}
                         for s in sets],
        "roles": {"calibration-negative": calibration, "heldout-negative": heldout,
                  "positive": categories},
        "fingerprint_budgets": list(fingerprint_budgets),
        "repeat_budgets": list(repeat_budgets), "methods": methods}
    return report, outcomes


def _measure_with_progress(zoo: Path, names: Sequence[str], sets: Sequence[Any], repeats: int,
                           seed: int, via_server: bool, progress: bool,
                           votes: int = 1) -> Outcomes:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True,
                  disable=not (progress and console.is_terminal)) as bar:
        task = bar.add_task("measure the population", total=len(names))
        return measure(zoo, names, sets, repeats, seed=seed, via_server=via_server, votes=votes,
                       on_model=lambda name: bar.advance(task))


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"


def to_markdown(report: dict[str, Any]) -> str:
    """The AUC table per method and attack category, then TPR at the calibrated thresholds."""
    methods = list(report["methods"])
    first = report["methods"][methods[0]]
    groups = list(first["groups"])
    roles = report["roles"]
    lines = [f"Population: {len(roles['calibration-negative'])} calibration negatives, "
             f"{len(roles['heldout-negative'])} held-out negatives, "
             f"{sum(len(v) for v in roles['positive'].values())} positives; "
             f"{report['repeats']} repeats"
             + (f" of {report['votes']} votes each" if report.get("votes", 1) > 1 else "")
             + ", "
             f"{'through a real server' if report['via_server'] else 'in-process'}; "
             f"manifest sha256 {report['manifest_sha256'][:12]}.", "",
             "ROC-AUC against the held-out negatives (95% bootstrap interval over models):", "",
             "| attack | models | " + " | ".join(methods) + " |",
             "|---|---:|" + "---:|" * len(methods)]
    for group in groups:
        cells = []
        for method in methods:
            g = report["methods"][method]["groups"][group]
            cells.append(f"{g['auc']:.2f} [{g['auc_ci95'][0]:.2f}, {g['auc_ci95'][1]:.2f}]")
        lines.append(f"| {group} | {len(first['groups'][group]['models'])} | "
                     + " | ".join(cells) + " |")
    def operating_point(m: str, fpr: str) -> tuple[Any, ...]:
        entry = report["methods"][m]
        return (tuple(entry["groups"][g]["tpr"][fpr] for g in groups),
                entry["heldout_fpr"][fpr])

    for index, fpr in enumerate(("0.01", "0.05")):
        if fpr == "0.05" and all(operating_point(m, "0.01") == operating_point(m, "0.05")
                                 for m in methods):
            lines += ["", "TPR at a nominal FPR of 5%: the same table as at 1% (both thresholds "
                      "are the same calibration quantile with this many negatives)."]
            continue
        lines += ["", f"TPR at a nominal FPR of {float(fpr):.0%} (threshold from the calibration "
                  "negatives; measured held-out FPR in the last row):", "",
                  "| attack | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
        for group in groups:
            lines.append(f"| {group} | " + " | ".join(
                _percent(report["methods"][m]["groups"][group]["tpr"][fpr]) for m in methods)
                + " |")
        lines.append("| held-out FPR | " + " | ".join(
            _percent(report["methods"][m]["heldout_fpr"][fpr]) for m in methods) + " |")
        notes = {report["methods"][m]["thresholds"][index]["note"] for m in methods} - {None}
        lines += [f"\n{note}" for note in sorted(notes)]
    kinds = report["methods"][methods[0]].get("heldout_kinds", {})
    if len(kinds) > 1:
        lines += ["", "Held-out innocents by kind: share above the 1% threshold / AUC of all "
                  "positives against that kind alone:", "",
                  "| innocents | models | " + " | ".join(methods) + " |",
                  "|---|---:|" + "---:|" * len(methods)]
        for kind, first_kind in kinds.items():
            lines.append(f"| {kind} | {first_kind['models']} | " + " | ".join(
                f"{_percent(report['methods'][m]['heldout_kinds'][kind]['fpr']['0.01'])} / "
                f"{report['methods'][m]['heldout_kinds'][kind]['auc_all_positives']:.2f}"
                for m in methods) + " |")
    lines += ["", "AUC (all positives) against the query budget: fingerprints sent (all repeats) "
              "| repeats (all fingerprints):", "",
              "| method | " + " | ".join(f"k={k}" for k in report["fingerprint_budgets"]) + " | "
              + " | ".join(f"r={r}" for r in report["repeat_budgets"]) + " |",
              "|---|" + "---:|" * (len(report["fingerprint_budgets"])
                                   + len(report["repeat_budgets"]))]
    for method in methods:
        budgets = report["methods"][method]["budgets"]
        lines.append(f"| {method} | " + " | ".join(
            f"{budgets['fingerprints']['all'][str(k)][0]:.2f}"
            for k in report["fingerprint_budgets"]) + " | " + " | ".join(
            f"{budgets['repeats']['all'][str(r)]:.2f}" for r in report["repeat_budgets"]) + " |")
    return "\n".join(lines) + "\n"


def to_csv(report: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["method", "group", "models", "auc", "auc_low", "auc_high", "tpr_at_1pct",
                     "tpr_at_5pct"])
    for method, data in report["methods"].items():
        for group, g in data["groups"].items():
            writer.writerow([method, group, len(g["models"]), g["auc"], *g["auc_ci95"],
                             g["tpr"]["0.01"], g["tpr"]["0.05"]])
    return buffer.getvalue()


def plot_roc(report: dict[str, Any]) -> bytes:
    """One ROC curve per method (all positives against the held-out negatives)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 5.2))
    for i, (method, data) in enumerate(report["methods"].items()):
        fpr, tpr = zip(*data["roc"], strict=True)
        label = f"{method} (AUC {data['groups']['all']['auc']:.2f})"
        axes.step(fpr, tpr, where="post", label=label,
                  color=DISTINCT_COLOURS[i % len(DISTINCT_COLOURS)])
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    axes.set(xlabel="false-positive rate (held-out negatives)",
             ylabel="true-positive rate (all positives)", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02),
             title="ROC per fingerprinting method, whole population")
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    return png_bytes(figure)


def plot_budgets(report: dict[str, Any]) -> bytes:
    """AUC against fingerprints sent and against repeats, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.8), sharey=True)
    ks, rs = report["fingerprint_budgets"], report["repeat_budgets"]
    methods = list(report["methods"])
    for i, method in enumerate(methods):
        budgets = report["methods"][method]["budgets"]
        colour = DISTINCT_COLOURS[i % len(DISTINCT_COLOURS)]
        means = [budgets["fingerprints"]["all"][str(k)][0] for k in ks]
        stds = [budgets["fingerprints"]["all"][str(k)][1] for k in ks]
        dodge = 1 + 0.025 * (i - (len(methods) - 1) / 2)  # error bars side by side, not stacked
        left.errorbar([k * dodge for k in ks], means, yerr=stds, marker="o", capsize=3,
                      label=method, color=colour)
        right.plot(rs, [budgets["repeats"]["all"][str(r)] for r in rs], marker="o",
                   label=method, color=colour)
    left.set(xlabel="fingerprints sent (seeded subsets; all repeats; bars: std over subsets)",
             ylabel="ROC-AUC", title="AUC against fingerprints sent", xscale="log")
    right.set(xlabel="repeats (all fingerprints)", title="AUC against repeats", xscale="log")
    plain_log_ticks(left, "x", ks)
    plain_log_ticks(right, "x", rs)
    for axes in (left, right):
        axes.grid(alpha=0.3)
    handles, labels = left.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8,
                  frameon=False)
    figure.suptitle("Query budget: all positives against the held-out negatives")
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    return png_bytes(figure)


def write_outputs(report: dict[str, Any], outcomes: Outcomes, out: Path) -> list[Path]:
    """``roc.json``, ``roc.md``, ``roc.csv``, ``roc.png``, ``budget.png``, ``outcomes.npz``."""
    paths = [out / name for name in ("roc.json", "roc.md", "roc.csv", "roc.png", "budget.png",
                                     "outcomes.npz")]
    write_json(paths[0], report)
    write_text(paths[1], to_markdown(report))
    write_text(paths[2], to_csv(report))
    write_bytes(paths[3], plot_roc(report))
    write_bytes(paths[4], plot_budgets(report))
    save_outcomes(paths[5], outcomes)
    return paths
