"""``python -m verifier_client demo``: serve the shipped zoo, verify its pirates, print verdicts."""

from __future__ import annotations

import argparse
from pathlib import Path

from models.cli_support import CommaList, Example, add_command, output_file, positive_int
from verifier_client.cli_options import add_eot_arguments

EXAMPLES = [
    Example("python -m verifier_client demo --repository zoo --models copy,csrp --repeats 2",
            cheap=True),
    Example("python -m verifier_client demo --repository zoo --json results/demo.json",
            note="make demo: the README's table, ~2 min"),
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers, "demo", "serve the zoo's pirate models and verify them (the README's first)",
        "Start the label-only server on 127.0.0.1 over the repository, verify the plain copy, "
        "the baseline pirates, the CSRP pirates, a distilled student and held-out innocent "
        "models as verify --adaptive does (probe, then the plain sets or, behind a randomized "
        "front, the EOT sets against their front-matched calibration), print the verdict table "
        "(the same on every run: seeded), stop the server.", EXAMPLES)
    p.add_argument("--repository", type=Path, default=Path("zoo"), metavar="DIR",
                   help="the zoo (default zoo)")
    p.add_argument("--fingerprints", type=Path, default=None,
                   help="folder of fingerprint sets (default REPOSITORY/fingerprints)")
    p.add_argument("--calibration", type=Path, default=None,
                   help="calibration file (default REPOSITORY/calibration.json)")
    add_eot_arguments(p)
    p.add_argument("--port", type=positive_int, default=None,
                   help="port of the demo's server on 127.0.0.1 (default: a free one)")
    p.add_argument("--repeats", type=positive_int, default=20,
                   help="queries of each set per model (paper: 100; default 20 keeps the demo "
                        "within a few minutes on 2 cores)")
    p.add_argument("--models", action=CommaList, default=None, metavar="A,B",
                   help="served models to verify (default: the demo's twelve)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the server's random stream and of the bootstrap (default 0)")
    p.add_argument("--json", type=output_file, default=None, metavar="FILE",
                   help="write all reports here")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from verifier_client.studies.demo import run_demo

    run_demo(args.repository, args.fingerprints or args.repository / "fingerprints",
             args.calibration or args.repository / "calibration.json", args.repeats,
             args.models, args.json, args.seed, args.eot_fingerprints, args.eot_calibration,
             args.port)
    return 0
