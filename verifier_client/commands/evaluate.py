"""``python -m verifier_client evaluate``: the paper's table for a zoo."""

from __future__ import annotations

import argparse
from pathlib import Path

from models.cli_support import output_dir, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="the paper's table (accuracy, T_avg per method) for a zoo",
        description="Rows target, compression, fine-tuning, pruning 0.1/0.5, independent "
                    "[min, max], CSRP only, CSRP + fine-tuning, RDG; columns accuracy and each "
                    "method's mean matching rate. In-process by default; --via-server queries a "
                    "real server on 127.0.0.1. Writes JSON, Markdown, CSV and a plot.")
    p.add_argument("--zoo", type=Path, default=Path("zoo"))
    p.add_argument("--repeats", type=positive_int, default=10)
    p.add_argument("--via-server", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=output_dir, default=Path("build/evaluation"),
                   help="output folder")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from verifier_client.evaluation import evaluate_zoo, to_markdown, write_outputs

    table = evaluate_zoo(args.zoo, args.repeats, args.via_server, args.seed)
    write_outputs(table, args.out)
    print(to_markdown(table))
    print(f"{table['seconds']} s; wrote {args.out}/evaluation.{{json,md,csv,png}}")
    return 0
