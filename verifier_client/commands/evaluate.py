"""``python -m verifier_client evaluate``: the paper's table for a zoo."""

from __future__ import annotations

import argparse
from pathlib import Path

from models.cli_support import Example, add_command, alias, output_dir, positive_int

EXAMPLES = [
    Example("python -m verifier_client evaluate --repository zoo --repeats 2 "
            "--out build/examples/evaluation", cheap=True),
    Example("python -m verifier_client evaluate --repository zoo --repeats 100 "
            "--out results/evaluation", note="the README's table"),
    Example("python -m verifier_client evaluate --repository zoo --repeats 5 --via-server "
            "--out build/evaluation-server"),
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers, "evaluate", "the paper's table (accuracy, T_avg per method) for a zoo",
        "Rows target, compression, fine-tuning, pruning 0.1/0.5, independent [min, max], CSRP "
        "only, CSRP + fine-tuning, RDG; columns accuracy and each method's mean matching rate. "
        "In-process by default; --via-server queries a real server on 127.0.0.1. Writes JSON, "
        "Markdown, CSV and a plot.", EXAMPLES)
    p.add_argument("--repository", type=Path, default=Path("zoo"), metavar="DIR",
                   help="the zoo (default zoo)")
    alias(p, "--zoo", dest="repository", type=Path)
    p.add_argument("--repeats", type=positive_int, default=10,
                   help="queries of every set per model (default 10)")
    p.add_argument("--via-server", action="store_true",
                   help="query a real server on 127.0.0.1 instead of in-process")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--seed", type=int, default=0, help="seed of the transform draws")
    p.add_argument("--out", type=output_dir, default=Path("build/evaluation"),
                   help="output folder")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from verifier_client.studies.evaluation import evaluate_zoo, to_markdown, write_outputs

    table = evaluate_zoo(args.repository, args.repeats, args.via_server, args.seed,
                         progress=not args.quiet)
    write_outputs(table, args.out)
    print(to_markdown(table))
    print(f"{table['seconds']} s; wrote {args.out}/evaluation.{{json,md,csv,png}}")
    return 0
