"""One self-contained HTML page of the results: every section reads what its command wrote.

``build_report(results, zoo)`` reads each section's JSON (the record, checked for the keys its
command writes), its Markdown table (rendered with the ``markdown`` package) and its figures
(inlined as ``data:`` URIs, so the page needs no network and no other file), and renders
``templates/report.html.j2`` with Jinja2. A section whose files are missing says which command
makes them; a malformed or foreign JSON file says what is wrong, and the other sections still
render. Nothing is recomputed.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SECTIONS", "Section", "SectionSpec", "build_report", "render", "report_methods",
           "role_label"]


@dataclass(frozen=True)
class SectionSpec:
    """Where one section's files are, relative to the results folder, and what made them."""

    key: str
    title: str
    json: str
    keys: tuple[str, ...]
    command: str
    markdown: str | None = None
    images: tuple[str, ...] = ()
    intro: str = ""


SECTIONS: tuple[SectionSpec, ...] = (
    SectionSpec("demo", "Verdicts on the shipped pirates (the demo)", "demo.json",
                ("reports",), "python -m verifier_client demo --repository zoo --json "
                "results/demo.json",
                intro="Mean matching rate per method over the demo's repeats, with the verdict "
                      "of each method and the overall verdict (family-wise alpha)."),
    SectionSpec("evaluation", "The paper's table on the zoo", "evaluation/evaluation.json",
                ("rows", "methods"), "python -m verifier_client evaluate --repository zoo "
                "--repeats 100 --out results/evaluation", "evaluation/evaluation.md",
                ("evaluation/evaluation.png",)),
    SectionSpec("roc", "Population: ROC-AUC per method and attack", "roc/roc.json",
                ("roles", "fingerprints"), "python -m verifier_client roc --repository zoo "
                "--quiet --out results/roc", "roc/roc.md", ("roc/roc.png", "roc/budget.png")),
    SectionSpec("validation", "Out-of-sample false accusations and catch rates",
                "validation/validation.json", ("negatives", "positives"),
                "python -m verifier_client validate --repository zoo --serve-behind 'none;"
                "csrp(sigma=1.23, p=6);csrp(sigma=1.16, p=3);csrp(sigma=1.3, p=8)' --out "
                "results/validation", "validation/validation.md",
                intro="Innocents no calibration saw, as they are and behind CSRP, decided by "
                      "verify --adaptive against a null measured through the same protocol; "
                      "each model is one trial, intervals are exact (Clopper-Pearson)."),
    SectionSpec("fronts", "Pirate fronts at CSRP's accuracy", "fronts/fronts.json",
                ("fronts", "methods"), "python -m verifier_client fronts --repository zoo "
                "--repeats 3 --out results/fronts", "fronts/fronts.md",
                intro="Each front's strength is set so the copy's top-1 equals CSRP's; AUC of "
                      "stolen copies against held-out innocents behind the same front, and the "
                      "share of each set a query detector flags."),
    SectionSpec("false-claims", "False claims and the commitment defence",
                "false-claims/false-claims.json", ("strategies", "commitment"),
                "python -m verifier_client false-claims --repository zoo --fingerprints "
                "build/false-claims/transfer.safetensors --out results/false-claims",
                "false-claims/false-claims.md",
                intro="Transferable samples crafted on the accuser's own model: innocents are "
                      "called stolen when the accuser chooses the null, and not when the "
                      "verifier does."),
    SectionSpec("eot", "The owner fights back: EOT fingerprints and votes", "roc-eot/roc.json",
                ("roles", "fingerprints"), "python -m verifier_client roc --repository zoo "
                "--fingerprints zoo/fingerprints-eot --repeats 10 --fingerprint-budgets 10,25,50 "
                "--quiet --out results/roc-eot", "roc-eot/roc.md",
                ("roc-eot/roc.png",)),
    SectionSpec("tune-defence", "The pirate's answer: the defence's Pareto front",
                "tune-defence/tune_defence.json", ("points", "fronts"),
                "python -m models tune-defence --model zoo/target --transform csrp --grid "
                "sigma=1.16,1.23,1.35 --grid p=3,6,9 --suite plain=zoo/fingerprints --suite "
                "eot=zoo/fingerprints-eot --votes 1,5 --entries zoo/csrp-ft,zoo/csrp-ft-weak,"
                "zoo/csrp-ft-strong --repeats 4 --samples 1000 --out results/tune-defence",
                "tune-defence/tune_defence.md", ("tune-defence/tune_defence.png",)),
    SectionSpec("stability", "RDG vs CSRP at equal accuracy (the paper's Table 5)",
                "stability/stability.json", ("modes", "methods"),
                "python -m verifier_client stability --repository zoo --threads 2 --out "
                "results/stability",
                "stability/stability.md", ("stability/stability.png",)),
    SectionSpec("explain", "LIME before and after CSRP (the paper's Figures 4 and 5)",
                "explain/explain.json", ("groups", "settings"),
                "python -m verifier_client explain --target zoo/target --fingerprints "
                "zoo/fingerprints --out results/explain", "explain/explain.md",
                ("explain/explain.png",)),
    SectionSpec("loadtest", "Load test: CSRP on and off", "loadtest/loadtest.json",
                ("points", "models"),
                "python -m server --repository zoo --models copy,csrp --port 8017 & python -m "
                "verifier_client loadtest --url http://127.0.0.1:8017 --model csrp --model copy "
                "--concurrency 1,8,32,64 --duration 10 --quiet --out results/loadtest",
                "loadtest/loadtest.md", ("loadtest/loadtest.png",)),
    SectionSpec("peer", "Serving against Triton and MLServer", "peer/peer.json",
                ("table", "ratios"),
                "python benchmarks/bench_peer.py --duration 8 --rounds 2 --concurrency 1,8,32 "
                "--out results/peer", "peer/peer.md"),
)

_PROVENANCE = ("code_version", "seed", "repeats", "time", "created", "manifest_sha256", "command")


@dataclass
class Section:
    key: str
    title: str
    source: str
    command: str
    status: str  # "ok" | "missing" | "error"
    message: str = ""
    body: str = ""
    images: list[dict[str, str]] = field(default_factory=list)
    provenance: dict[str, str] = field(default_factory=dict)


def _markdown_html(text: str) -> str:
    import markdown

    return markdown.markdown(text, extensions=["tables"], output_format="html")


def _data_uri(path: Path) -> str:
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError(f"{path.name} is not a PNG image")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def report_methods(reports: Sequence[dict[str, Any]]) -> list[str]:
    """Every method of every report, in the order the sets were loaded (an EOT path has fewer
    sets than the plain one)."""
    return list(dict.fromkeys(row["method"] for r in reports for row in r.get("methods", [])))


def role_label(role: str | None) -> str:
    """A model's role as a reader names it: held-out negatives are innocents."""
    return {"heldout-negative": "innocent (held out)"}.get(role or "-", role or "-")


def _demo_table(record: dict[str, Any]) -> str:
    reports = record["reports"]
    if not isinstance(reports, list) or not all(isinstance(r, dict) for r in reports):
        raise ValueError("'reports' is not a list of verification reports")
    methods = report_methods(reports)
    lines = ["| model | role | " + " | ".join(methods) + " | verdict |",
             "|---|---|" + "---:|" * len(methods) + "---|"]
    for report in reports:
        by_method = {m["method"]: m for m in report.get("methods", [])}
        cells = []
        for method in methods:
            entry = by_method.get(method)
            if entry is None:
                cells.append("-")
                continue
            mark = " S" if entry.get("verdict") == "stolen" else ""
            cells.append(f"{entry.get('mr_mean', float('nan')):.2f}{mark}")
        overall = report.get("overall", {})
        verdict = overall.get("verdict", "-") if isinstance(overall, dict) else str(overall)
        lines.append(f"| {report.get('model', '?')} | {role_label(report.get('role'))} | "
                     + " | ".join(cells)
                     + f" | {verdict} |")
    return "\n".join(lines) + "\n\nS: that method's verdict is stolen.\n"


def _section(spec: SectionSpec, results: Path) -> Section:
    section = Section(spec.key, spec.title, spec.json, spec.command, "ok")
    path = results / spec.json
    if not path.is_file():
        section.status = "missing"
        return section
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict):
            raise ValueError(f"expected a JSON object, found {type(record).__name__}")
        absent = [key for key in spec.keys if key not in record]
        if absent:
            raise ValueError(f"not the output of this section's command (no {', '.join(absent)})")
        parts = [f"<p>{spec.intro}</p>"] if spec.intro else []
        if spec.key == "demo":
            parts.append(_markdown_html(_demo_table(record)))
        if spec.markdown is not None and (results / spec.markdown).is_file():
            parts.append(_markdown_html((results / spec.markdown).read_text()))
        section.body = "\n".join(parts)
        for image in spec.images:
            if (results / image).is_file():
                section.images.append({"uri": _data_uri(results / image), "alt": image})
        section.provenance = {key: str(record[key]) for key in _PROVENANCE if key in record}
    except (ValueError, KeyError, TypeError, OSError) as error:
        section.status, section.message = "error", str(error) or type(error).__name__
    return section


def build_report(results: Path, zoo: Path,
                 specs: Sequence[SectionSpec] = SECTIONS) -> list[Section]:
    """Every section of ``results`` (see module doc)."""
    return [_section(spec, results) for spec in specs]


def manifest_hash(zoo: Path) -> str:
    path = zoo / "population.json"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "(none)"


def render(sections: Sequence[Section], *, zoo: Path, command: str, code_version: str,
           created: str) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(loader=PackageLoader("verifier_client.studies", "templates"),
                              autoescape=select_autoescape(["html", "j2"]))
    template = environment.get_template("report.html.j2")
    return template.render(title="csrp-testbed results", sections=sections, command=command,
                           code_version=code_version, created=created,
                           manifest=str(zoo / "population.json"),
                           manifest_sha256=manifest_hash(zoo))
