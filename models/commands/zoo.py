"""``python -m models zoo``: build (or finish) the default zoo's population of models."""

from __future__ import annotations

import argparse
from pathlib import Path

from models.cli_support import (
    CommaList,
    Example,
    add_command,
    alias,
    output_dir,
    positive_float,
    positive_int,
)

EXAMPLES = [
    Example("python -m models zoo --repository zoo",
            note="build what is missing (the shipped zoo: nothing)"),
    Example("python -m models zoo --repository zoo --only csrp,csrp-ft",
            note="just these; their parents must exist"),
    Example("python -m models zoo --repository zoo --jobs 2",
            note="two worker processes of one thread each"),
    Example("python -m models zoo --repository zoo --executor ray",
            note="one Ray task per entry on a local cluster"),
    Example("python -m models zoo --repository zoo --executor ray --address 10.0.0.5:6379 "
            "--gpus-per-task 1"),
]
FOOTER = """The plan (every entry's role and recipe) is models/zoo/plan.py; the build writes
zoo/BUILD.json (per-entry status and time) and zoo/population.json (the roles). Fingerprint
sets, pools and calibration are the verifier's side: `make zoo` runs both."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "zoo", "build the default zoo's models (resumable; local or Ray)",
                    "Train the target, the calibration and held-out negatives, and derive every "
                    "pirate entry. Entries that exist are skipped; a failed entry is reported "
                    "and skipped with everything derived from it.", EXAMPLES, FOOTER)
    p.add_argument("--repository", type=output_dir, default=Path("zoo"), metavar="DIR",
                   help="the zoo folder (default zoo)")
    alias(p, "--out", dest="repository", type=output_dir)
    p.add_argument("--calibration-negatives", "--independents", dest="calibration",
                   type=positive_int, default=100,
                   help="independent models for calibration, indep-01.. (default 100)")
    p.add_argument("--only", action=CommaList, default=None, metavar="A,B",
                   help="only these entries (comma-separated, e.g. csrp,csrp-ft)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: in this machine's processes (default); ray: one Ray task per "
                        "entry")
    p.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                   help="local worker processes, each with CPUs/N torch threads (default 1; "
                        "2 trains about 15%% faster than 1 on two cores)")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (default: start a local cluster)")
    p.add_argument("--gpus-per-task", type=positive_float, default=None,
                   help="GPUs each Ray task reserves (training then runs on CUDA)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from models.errors import UserError
    from models.zoo import build_zoo

    if args.executor != "ray" and (args.address or args.gpus_per_task):
        raise UserError("--address and --gpus-per-task need --executor ray")
    if args.executor == "ray" and args.jobs != 1:
        raise UserError("--jobs is for --executor local (Ray schedules by CPUs)")
    records = build_zoo(args.repository, args.calibration, args.only,
                        executor=args.executor, address=args.address,
                        gpus_per_task=args.gpus_per_task or 0.0, jobs=args.jobs)
    return 1 if any(r["status"] in ("failed", "skipped") for r in records.values()) else 0
