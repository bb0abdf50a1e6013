"""The main demo: serve the shipped zoo, verify pirates and innocent models, print verdicts.

Starts ``python -m server`` on 127.0.0.1 over the repository and verifies each served model as
``python -m verifier_client verify --adaptive`` does: a probe first, then the plain sets against
the plain calibration, or, behind a randomized front, the EOT sets against their front-matched
calibration with its votes and repeats. Prints one verdict table and stops the server.

It prints the same table on every run: the server's random stream is seeded (``--seed``), the
verifier sends one request at a time and the server executes each as its own batch (so the
draws meet the images in the same order every time), and the bootstrap is seeded. The innocent
models shown are *held-out* negatives, never seen by the calibration.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from models.atomic import write_json
from models.cli_support import print_rich
from models.errors import UserError
from models.local_server import LocalServer
from models.provenance import code_version, utc_now
from models.repository import list_entries, load_config
from verifier_client.calibration import load_calibration
from verifier_client.fingerprint_set import load_sets
from verifier_client.studies.report import report_methods, role_label
from verifier_client.verification import NO_VERDICT, VerifyOptions, verify

#: Served in this order when present: the untouched copy, the paper's baseline pirates, the
#: CSRP pirates, the RDG ablation, a distilled student, and held-out innocent models.
DEMO_MODELS = ("copy", "int8", "prune-0.1", "prune-0.5", "ftal", "csrp", "csrp-ft", "rdg-ft",
               "kd-resnet20-1", "heldout-resnet20-01", "heldout-vgg16-01",
               "heldout-mobilenet-01")
DEMO_SEED = 0


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
             models: list[str] | None = None, json_out: Path | None = None,
             seed: int = DEMO_SEED, eot_fingerprints: Path | None = None,
             eot_calibration: Path | None = None, port: int | None = None) -> dict[str, Any]:
    """Serve, verify every chosen model adaptively, print the verdict table; the summary."""
    from verifier_client.adaptive import Route, check_front_route, choose

    names = demo_models(repository, models)
    entries = {name: load_config(repository / name) for name in names}
    plain = Route(load_sets([fingerprints]), load_calibration(calibration))
    eot_calibration = eot_calibration or repository / "calibration-eot.json"
    front = Route(load_sets([eot_fingerprints or repository / "fingerprints-eot"]),
                  load_calibration(eot_calibration))
    check_front_route(front, str(eot_calibration))
    started = time.perf_counter()
    reports = []
    client = {"concurrency": 1}
    with LocalServer(repository, "--models", ",".join(names), "--seed", str(seed),
                     "--max-queue-delay-ms", "0", threads=2, quiet=True, port=port) as server:
        print(f"serving {', '.join(names)} at {server.url} "
              f"(ready after {time.perf_counter() - started:.1f} s)", flush=True)
        for name in names:
            choice = choose(server.url, name, plain, front, 1, repeats, client)
            options = VerifyOptions(repeats=choice.repeats, votes=choice.votes, seed=seed)
            report = verify(server.url, name, choice.sets, choice.calibration, options=options,
                            show_progress=True, **client)
            report["adaptive"] = choice.describe()
            report["preprocessing"] = entries[name].preprocessing
            report["role"] = _role(repository, name)
            reports.append(report)
    summary = {"repository": str(repository), "repeats": repeats, "seed": seed,
               "seconds": round(time.perf_counter() - started, 1), "reports": reports,
               "code_version": code_version(), "time": utc_now()}
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


def _role(repository: Path, name: str) -> str | None:
    from models.zoo import MANIFEST_FILE, load_manifest

    if not (repository / MANIFEST_FILE).is_file():
        return None
    manifest = load_manifest(repository)
    return next((e["role"] for e in manifest.entries if e["name"] == name), None)


_MARKS = {"stolen": ("bold red", "S"), "inconclusive": ("yellow", "?"),
          "not_proven": ("green", "-"), NO_VERDICT: ("bold yellow", "x")}


def print_verdicts(summary: dict[str, Any]) -> None:
    """One row per served model, one column per method: mean matching rate with S (stolen),
    ? (inconclusive) or - (not proven); then the overall verdict."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    reports = summary["reports"]
    methods = report_methods(reports)
    table = Table(title="Mean matching rate (S stolen, ? inconclusive, - not proven); sets: "
                        "plain, or EOT behind a front the probe found randomized",
                  box=box.SIMPLE_HEAD)
    for column in ("served model", "role", "served behind", "sets (queries)"):
        table.add_column(column, no_wrap=True)
    for method in methods:
        table.add_column(method, justify="right")
    table.add_column("overall verdict")
    for report in reports:
        cells = []
        by_method = {row["method"]: row for row in report["methods"]}
        for method in methods:
            row = by_method.get(method)
            if row is None:  # not a set of the path this model was verified with
                cells.append("[dim]n/a[/dim]")
                continue
            style, mark = _MARKS[row["verdict"]]
            rate = "-" if row["mr_mean"] is None else f"{row['mr_mean']:.2f}"
            cells.append(f"[{style}]{rate} {mark}[/{style}]")
        overall = report["overall"]
        style, _ = _MARKS[overall["verdict"]]
        by = f" ({len(overall.get('stolen_by', []))}/{len(by_method)})" \
            if overall["verdict"] == "stolen" else ""
        randomized = report.get("adaptive", {}).get("randomized")
        sets = (f"EOT x{report['votes']}x{report['repeats_requested']}" if randomized else
                f"plain x{report['repeats_requested']}")
        table.add_row(report["model"], role_label(report.get("role")),
                      _preprocessing(report.get("preprocessing")),
                      f"{sets} ({report['queries_used']})", *cells,
                      f"[{style}]{overall['verdict']}{by}[/{style}]")
    console = Console(width=max(180, Console().width))  # piped: room for every column
    print_rich(table, console)
    decided = [r for r in reports if r["overall"]["verdict"] != NO_VERDICT]
    shown = set()
    for report in decided:  # one line per kind of guarantee (plain and EOT may differ)
        overall = report["overall"]
        line = f"family-wise alpha {overall['alpha']:g}: {overall['guarantee']}"
        if line not in shown:
            shown.add(line)
            console.print(line, soft_wrap=True)
    console.print(f"demo took {summary['seconds']:.0f} s")
