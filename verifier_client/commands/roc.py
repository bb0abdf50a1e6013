"""``python -m verifier_client roc``: every method's error rates over the zoo's population."""

from __future__ import annotations

import argparse
from pathlib import Path

from models.cli_support import (
    CommaList,
    Example,
    HelpFormatter,
    alias,
    examples_epilog,
    output_dir,
    positive_int,
)
from models.errors import UserError

EXAMPLES = [
    Example("python -m verifier_client roc --repository zoo --repeats 2 "
            "--fingerprint-budgets 10,100 --repeat-budgets 1,2 --subsamples 2 --quiet "
            "--out build/examples/roc", cheap=True),
    Example("python -m verifier_client roc --repository zoo --out results/roc",
            note="the README's tables"),
    Example("python -m verifier_client roc --repository zoo "
            "--fingerprints zoo/fingerprints-eot --votes 5 --out results/roc-eot-votes"),
]
FOOTER = """Roles come from zoo/population.json: thresholds from the calibration negatives only,
AUCs against the held-out negatives only."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "roc", help="ROC-AUC, TPR at 1%%/5%% FPR and budget curves per method and attack",
        description="Measure every entry of the zoo's population with every fingerprint set "
                    "and report, per method and attack category, the ROC-AUC against the "
                    "held-out negatives, the TPR at FPR 1%% and 5%% with thresholds from the "
                    "calibration negatives, and the AUC against the number of fingerprints and "
                    "repeats. Writes roc.json, .md, .csv, roc.png, budget.png, outcomes.npz.",
        epilog=examples_epilog(EXAMPLES, FOOTER),
        formatter_class=HelpFormatter)
    p.add_argument("--repository", type=Path, default=Path("zoo"), metavar="DIR",
                   help="the zoo, with population.json (default zoo)")
    alias(p, "--zoo", dest="repository", type=Path)
    p.add_argument("--fingerprints", type=Path, default=None,
                   help="fingerprint sets (default: REPOSITORY/fingerprints)")
    p.add_argument("--repeats", type=positive_int, default=20,
                   help="queries of every set per model (default 20)")
    p.add_argument("--fingerprint-budgets", action=CommaList, item=int,
                   default=[10, 25, 50, 100],
                   metavar="K,K", help="fingerprints sent, for the budget curve (default "
                   "10,25,50,100)")
    p.add_argument("--repeat-budgets", action=CommaList, item=int, default=None,
                   metavar="R,R",
                   help="repeats, for the budget curve (default 1,5,20, those above --repeats "
                        "replaced by --repeats)")
    p.add_argument("--subsamples", type=positive_int, default=20,
                   help="seeded fingerprint subsets per budget (default 20)")
    p.add_argument("--votes", type=positive_int, default=1, metavar="K",
                   help="score each fingerprint's modal label over K queries per repeat "
                        "(default 1)")
    p.add_argument("--via-server", action="store_true",
                   help="query a real server on 127.0.0.1 instead of in-process")
    p.add_argument("--seed", type=int, default=0, help="transform draws, subsets, bootstrap")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", type=output_dir, default=Path("build/roc"), help="output folder")
    p.set_defaults(run=run)


def default_repeat_budgets(repeats: int) -> list[int]:
    """1, 5 and 20 repeats, capped at what was measured: ``--repeats 10`` gives 1, 5, 10 (a
    budget the user never set must not fail the run)."""
    return sorted({min(r, repeats) for r in (1, 5, 20)})


def run(args: argparse.Namespace) -> int:
    from verifier_client.studies.roc_study import roc_study, to_markdown, write_outputs

    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file, not a folder")
    report, outcomes = roc_study(args.repository, args.fingerprints, repeats=args.repeats,
                                 via_server=args.via_server,
                                 fingerprint_budgets=args.fingerprint_budgets,
                                 repeat_budgets=args.repeat_budgets or default_repeat_budgets(
                                     args.repeats), subsamples=args.subsamples,
                                 seed=args.seed, progress=not args.quiet, votes=args.votes)
    write_outputs(report, outcomes, args.out)
    print(to_markdown(report))
    print(f"{report['seconds']} s; wrote {args.out}/roc.{{json,md,csv,png}}, budget.png, "
          "outcomes.npz")
    return 0
