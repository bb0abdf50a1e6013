"""``python -m models tune-defence``: the pirate's Pareto front against a fingerprint suite."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from models.cli_support import Example, add_command, existing_entry, output_dir, positive_int
from models.errors import UserError

EXAMPLES = [
    Example("python -m models tune-defence --model zoo/target --transform csrp "
            "--grid sigma=1.23 --grid p=3,6 --suite plain=zoo/fingerprints/ipguard.safetensors "
            "--repeats 2 --samples 300 --acc-repeats 1 --out build/examples/tune-defence",
            cheap=True),
    Example("python -m models tune-defence --model zoo/target --transform csrp "
            "--grid sigma=1.16,1.23,1.3,1.4 --grid p=2,4,6,8,10 --suite plain=zoo/fingerprints "
            "--suite eot=zoo/fingerprints-eot --votes 1,5 "
            "--entries zoo/csrp-ft,zoo/csrp-ft-weak,zoo/csrp-ft-strong "
            "--out results/tune-defence", note="the README's arms-race table"),
]


def grid_item(text: str) -> tuple[str, list[Any]]:
    key, sep, values = text.partition("=")
    if not sep or not key or not values:
        raise argparse.ArgumentTypeError(f"expected option=v1,v2,...; got {text!r}")
    parsed: list[Any] = []
    for value in values.split(","):
        try:
            parsed.append(int(value) if value.strip().lstrip("-").isdigit() else float(value))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{key}: {value!r} is not a number") from None
    return key.strip().replace("-", "_"), parsed


def suite_item(text: str) -> tuple[str, list[str]]:
    name, sep, paths = text.partition("=")
    if not sep or not name or not paths:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH[,PATH]; got {text!r}")
    return name, paths.split(",")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "tune-defence",
                    "pirate: Pareto front of accuracy vs the owner's matching rate",
                    "Sweep a defence's settings (data-free, on the stolen model) and zoo entries "
                    "(e.g. fine-tuned pirates) against the owner's fingerprint suites, with and "
                    "without majority votes, and print the Pareto front of accuracy as served "
                    "against the owner's best matching rate.", EXAMPLES)
    p.add_argument("--model", required=True, type=existing_entry, metavar="REPO/NAME",
                   help="the stolen model (served behind each grid setting)")
    p.add_argument("--transform", required=True, help="registered transform, e.g. csrp or rdg")
    p.add_argument("--grid", action="append", type=grid_item, default=[],
                   metavar="OPTION=V1,V2", help="values of one option (repeat per option)")
    p.add_argument("--suite", action="append", type=suite_item, default=[],
                   metavar="NAME=PATH", help="a fingerprint suite: sets or folders (repeatable)")
    p.add_argument("--entries", default="", metavar="REPO/A,REPO/B",
                   help="extra points: entries behind their own preprocessing")
    p.add_argument("--votes", default="1", metavar="K,K",
                   help="owner's majority votes per fingerprint (default 1)")
    p.add_argument("--repeats", type=positive_int, default=10, help="repeats (default 10)")
    p.add_argument("--samples", type=positive_int, default=2000,
                   help="test images for the accuracy (default 2000)")
    p.add_argument("--acc-repeats", type=positive_int, default=2,
                   help="transform draws for the accuracy (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of every draw")
    p.add_argument("--out", type=output_dir, default=Path("build/tune-defence"),
                   help="output folder")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from models.transforms import TRANSFORMS
    from models.tune_defence import to_markdown, tune_defence, write_outputs

    TRANSFORMS.check(args.transform)
    if not args.grid:
        raise UserError("give at least one --grid OPTION=V1,V2")
    if not args.suite:
        raise UserError("give at least one --suite NAME=PATH")
    try:
        votes = [int(v) for v in args.votes.split(",")]
    except ValueError:
        raise UserError(f"--votes must be integers, got {args.votes!r}") from None
    if any(v < 1 for v in votes):
        raise UserError("--votes must be >= 1")
    entries = [existing_entry(e) for e in args.entries.split(",") if e]
    report = tune_defence(args.model, args.transform, dict(args.grid), dict(args.suite),
                          entries=entries, votes=votes, repeats=args.repeats,
                          samples=args.samples, acc_repeats=args.acc_repeats, seed=args.seed)
    write_outputs(report, args.out)
    print(to_markdown(report))
    print(f"{report['seconds']} s; wrote {args.out}/tune_defence.{{json,md,csv,png}}")
    return 0
