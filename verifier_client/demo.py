"""The main demo: serve the shipped zoo, verify every pirate entry remotely, print verdicts.

Starts ``python -m server`` on 127.0.0.1 over the repository, verifies each served model with
the repository's fingerprint sets against its calibration (the same code path as
``python -m verifier_client verify``), prints one verdict table, and stops the server.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from models.atomic import write_json
from models.errors import UserError
from models.repository import list_entries, load_config
from verifier_client.calibration import load_calibration
from verifier_client.fingerprint_set import load_sets
from verifier_client.local_server import LocalServer
from verifier_client.verification import verify

#: Served in this order when present: the untouched copy, the paper's baseline pirates, the
#: CSRP pirates, the RDG ablation, and one independent model for contrast.
DEMO_MODELS = ("copy", "int8", "prune-0.1", "prune-0.5", "ftal", "csrp", "csrp-ft", "rdg-ft",
               "indep-01")


def demo_models(repository: Path, wanted: list[str] | None) -> list[str]:
    present = set(list_entries(repository))
    if wanted:
        missing = [m for m in wanted if m not in present]
        if missing:
            raise UserError(f"{repository}: no model(s) {', '.join(missing)}")
        return wanted
    chosen = [m for m in DEMO_MODELS if m in present]
    if not chosen:
        raise UserError(f"{repository}: none of the demo models ({', '.join(DEMO_MODELS)}) exist; "
                        "build the zoo with `make zoo`")
    return chosen


def run_demo(repository: Path, fingerprints: Path, calibration: Path, repeats: int,
             models: list[str] | None = None, json_out: Path | None = None) -> dict[str, Any]:
    """Serve, verify every chosen model, print the verdict table; returns the summary."""
    names = demo_models(repository, models)
    entries = {name: load_config(repository / name) for name in names}
    sets = load_sets([fingerprints])
    document = load_calibration(calibration)
    started = time.perf_counter()
    reports = []
    with LocalServer(repository, "--models", ",".join(names), threads=2, quiet=True) as server:
        print(f"serving {', '.join(names)} at {server.url} "
              f"(ready after {time.perf_counter() - started:.1f} s)", flush=True)
        for name in names:
            report = verify(server.url, name, sets, document, repeats=repeats,
                            show_progress=True)
            report["preprocessing"] = entries[name].preprocessing
            reports.append(report)
    summary = {"repository": str(repository), "repeats": repeats,
               "seconds": round(time.perf_counter() - started, 1), "reports": reports}
    print_verdicts(summary)
    if json_out is not None:
        write_json(json_out, summary)
    return summary


def _preprocessing(spec: dict[str, Any] | None) -> str:
    if not spec:
        return "none"
    if spec["name"] == "csrp":
        return f"csrp {spec['sigma']}/{spec['p']}"
    return f"{spec['name']} {spec.get('distort_limit', '')}".strip()


def print_verdicts(summary: dict[str, Any]) -> None:
    """One row per served model, one column per method: mean matching rate, S when stolen."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    reports = summary["reports"]
    methods = [row["method"] for row in reports[0]["methods"]]
    table = Table(title=f"Mean matching rate over {summary['repeats']} repeats "
                        "(S = stolen: above the calibrated threshold)", box=box.SIMPLE_HEAD)
    table.add_column("served model")
    table.add_column("preproc.")
    for method in methods:
        table.add_column(method, justify="right")
    table.add_column("verdict")
    for report in reports:
        cells, stolen = [], 0
        for row in report["methods"]:
            if row["verdict"] == "stolen":
                stolen += 1
                cells.append(f"[bold red]{row['mr_mean']:.2f} S[/bold red]")
            else:
                cells.append(f"[green]{row['mr_mean']:.2f} -[/green]")
        verdict = (f"[bold red]stolen ({stolen}/{len(cells)})[/bold red]" if stolen
                   else "[green]not proven[/green]")
        table.add_row(report["model"], _preprocessing(report.get("preprocessing")), *cells,
                      verdict)
    thresholds = ", ".join(f"{row['method']} {row['threshold']:.2f}"
                           for row in reports[0]["methods"])
    console = Console(width=max(100, Console().width))
    console.print(table)
    console.print(f"thresholds: {thresholds}")
    console.print(f"demo took {summary['seconds']:.0f} s")
