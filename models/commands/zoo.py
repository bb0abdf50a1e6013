"""``python -m models zoo``: build (or finish) the models of the default zoo."""

from __future__ import annotations

import argparse
from pathlib import Path

from models.cli_support import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "zoo", help="build the default zoo's models (resumable)",
        description="Train the target and independents and derive every pirate entry. Steps "
                    "whose entry exists are skipped. The verifier side (pools, fingerprints, "
                    "calibration) is `python -m verifier_client zoo`; `make zoo` runs both.")
    p.add_argument("--out", type=Path, default=Path("zoo"))
    p.add_argument("--independents", type=positive_int, default=10)
    p.add_argument("--only", default=None, help="comma-separated step names (e.g. csrp,csrp-ft)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from models.zoo import build_zoo

    build_zoo(args.out, args.independents, args.only.split(",") if args.only else None)
    return 0
