"""``python -m verifier_client report``: one self-contained HTML page of the results."""

from __future__ import annotations

import argparse
from pathlib import Path

from models.cli_support import Example, add_command, output_dir
from models.errors import UserError

EXAMPLES = [
    Example("python -m verifier_client report --results results --repository zoo "
            "--out build/examples/report", cheap=True),
    Example("python -m verifier_client report --results results --repository zoo --out report",
            note="the shipped report (report/index.html)"),
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers, "report", "one self-contained HTML page of the results",
        "Read the JSON, Markdown and figures the other commands wrote under --results (demo, "
        "evaluate, roc, validate, stability, explain, loadtest, the peer benchmark) and write "
        "OUT/index.html with every image inlined: it opens offline. A missing section says "
        "which command makes it; a malformed one says what is wrong and the rest still "
        "renders. Exit 1 only when no section could be rendered.", EXAMPLES)
    p.add_argument("--results", type=Path, default=Path("results"), metavar="DIR",
                   help="the results folder (default results)")
    p.add_argument("--repository", "--zoo", dest="repository", type=Path, default=Path("zoo"),
                   metavar="DIR", help="the zoo, for its manifest hash (default zoo)")
    p.add_argument("--out", required=True, type=output_dir, metavar="DIR", help="output folder")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from models.atomic import write_text
    from models.provenance import code_version, utc_now
    from verifier_client.studies.report import build_report, render

    if not args.results.is_dir():
        raise UserError(f"{args.results}: results folder not found")
    sections = build_report(args.results, args.repository)
    html = render(sections, zoo=args.repository, command="python -m verifier_client report "
                  + " ".join(sys.argv[2:]), code_version=code_version(), created=utc_now())
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "index.html", html)
    for section in sections:
        note = {"ok": "", "missing": f" (missing: {section.command})",
                "error": f" ({section.message})"}[section.status]
        print(f"{section.status:8s} {section.title}{note}")
    rendered = sum(s.status == "ok" for s in sections)
    print(f"wrote {args.out / 'index.html'}: {rendered} of {len(sections)} sections, "
          f"{len(html) / 1e6:.1f} MB")
    return 0 if rendered else 1
