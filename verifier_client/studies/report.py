"""One self-contained HTML page of the results: every section reads what its command wrote.

``build_report(results, zoo)`` reads each section's JSON (the record, checked for the keys its
command writes), its Markdown table (rendered with the ``markdown`` package) and its figures
(inlined as ``data:`` URIs, so the page needs no network and no other file), and renders
``templates/report.html.j2`` with Jinja2. A section whose files are missing says which command
makes them; a malformed or foreign JSON file says what is wrong, and the other sections still
render. Nothing is recomputed.

Each section opens with a takeaway computed from its record (``report_takeaways``); each figure
has alt text and a caption (``report_sections``). The page states once the code version most of
its sections were made at and flags every section made at another, from a checkout with
uncommitted changes, without a recorded version, or partly from an earlier run's cache.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verifier_client.studies.report_sections import GLOSSARY, SECTIONS, SectionSpec
from verifier_client.studies.report_takeaways import takeaway

__all__ = ["SECTIONS", "Section", "SectionSpec", "build_report", "render", "report_methods",
           "results_version", "role_label"]


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
    takeaway: str = ""
    code_version: str = ""
    notes: list[str] = field(default_factory=list)  # cache reuse, an older manifest
    flag: str = ""  # set by render: why this section's provenance differs from the page's


def record_version(record: dict[str, Any]) -> str:
    """The code version a command recorded (the load test keeps it under ``client``, the peer
    benchmark under ``meta``); ``""`` when it recorded none."""
    for holder in (record, record.get("client"), record.get("meta")):
        if isinstance(holder, dict) and isinstance(holder.get("code_version"), str):
            return holder["code_version"]
    return ""


def _cache_note(record: dict[str, Any]) -> str:
    """Said when a study took measurements from an earlier run's cache (validate, fronts)."""
    cache = record.get("cache")
    if not isinstance(cache, dict):
        return ""
    counts = [cache] if "reused" in cache else [c for c in cache.values() if isinstance(c, dict)]
    reused = sum(int(c.get("reused", 0)) for c in counts)
    total = reused + sum(int(c.get("measured", 0)) for c in counts)
    if not reused:
        return ""
    return (f"{reused} of {total} measurements were read from the cache of an earlier run of "
            "the same command (keyed by model, fingerprint sets and query protocol); the "
            "verdicts and tables were computed at this section's code version.")


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
        verdict = str(verdict).replace("_", " ")
        lines.append(f"| {report.get('model', '?')} | {role_label(report.get('role'))} | "
                     + " | ".join(cells)
                     + f" | {verdict} |")
    return "\n".join(lines) + "\n\nS: that method's verdict is stolen.\n"


def _manifest_note(record: dict[str, Any], manifest: str) -> str:
    """Said when a study measured a population the zoo has since grown past."""
    made_on = record.get("manifest_sha256")
    if not isinstance(made_on, str) or manifest == "(none)" or made_on == manifest:
        return ""
    return (f"Measured on the population manifest {made_on[:12]}; the zoo's is now "
            f"{manifest[:12]} (models were added or changed since), so a rerun measures a "
            "different population.")


def _section(spec: SectionSpec, results: Path, manifest: str = "(none)") -> Section:
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
        # wide tables scroll inside their own box instead of pushing the page sideways
        section.body = ("\n".join(parts).replace("<table>", '<div class="table-wrap"><table>')
                        .replace("</table>", "</table></div>"))
        for figure in spec.images:
            if (results / figure.path).is_file():
                section.images.append({"uri": _data_uri(results / figure.path),
                                       "alt": figure.alt, "caption": figure.caption,
                                       "file": figure.path})
        section.provenance = {key: str(record[key]) for key in _PROVENANCE
                              if key in record and key != "code_version"}
        section.code_version = record_version(record)
        section.takeaway = takeaway(spec.key, record)
        section.notes = [note for note in (_cache_note(record), _manifest_note(record, manifest))
                         if note]
    except (ValueError, KeyError, TypeError, OSError) as error:
        section.status, section.message = "error", str(error) or type(error).__name__
    return section


def build_report(results: Path, zoo: Path,
                 specs: Sequence[SectionSpec] = SECTIONS) -> list[Section]:
    """Every section of ``results`` (see module doc)."""
    manifest = manifest_hash(zoo)
    return [_section(spec, results, manifest) for spec in specs]


def manifest_hash(zoo: Path) -> str:
    path = zoo / "population.json"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "(none)"


def results_version(sections: Sequence[Section]) -> str:
    """The code version most readable sections were made at (``""`` when none records one)."""
    versions = Counter(s.code_version for s in sections if s.status == "ok" and s.code_version)
    return versions.most_common(1)[0][0] if versions else ""


def _flag(section: Section, version: str) -> str:
    if section.status != "ok":
        return ""
    if not section.code_version:
        return "This section's record states no code version."
    if section.code_version.endswith(".dirty"):
        return (f"Made at {section.code_version}: a checkout with uncommitted changes, so the "
                "code that made it cannot be recovered exactly.")
    if section.code_version != version:
        return (f"Made at code version {section.code_version}, not the {version} of the rest "
                "of this page.")
    return ""


def render(sections: Sequence[Section], *, zoo: Path, command: str, code_version: str,
           created: str) -> str:
    """The page; ``code_version`` is the renderer's, stated beside the results' own."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    version = results_version(sections)
    for section in sections:
        section.flag = _flag(section, version)
    environment = Environment(loader=PackageLoader("verifier_client.studies", "templates"),
                              autoescape=select_autoescape(["html", "j2"]))
    template = environment.get_template("report.html.j2")
    return template.render(title="csrp-testbed results", sections=sections, command=command,
                           code_version=code_version, results_version=version,
                           flagged=[s for s in sections if s.flag], glossary=GLOSSARY,
                           created=created, manifest=str(zoo / "population.json"),
                           manifest_sha256=manifest_hash(zoo))
