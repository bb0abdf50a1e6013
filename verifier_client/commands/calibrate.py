"""``python -m verifier_client calibrate``: matching rates of independent models on fingerprint
sets, and the decision threshold per method (the maximum, and a fitted false-positive-controlled
quantile)."""

from __future__ import annotations

import argparse
from pathlib import Path

from models.cli_support import (
    CommaList,
    Example,
    add_command,
    existing_entry,
    output_file,
    positive_int,
    print_rich,
)
from models.errors import UserError
from verifier_client.cli_options import add_client_arguments, alpha_value, client_kwargs

RULES = ("conservative", "max", "fit")
DEFAULT_ALPHA = 0.01
EXAMPLES = [
    Example("python -m verifier_client calibrate --fingerprints zoo/fingerprints "
            "--repository zoo --out build/examples/calibration.json", cheap=True,
            note="the manifest's calibration negatives, in-process"),
    Example("python -m verifier_client calibrate --fingerprints zoo/fingerprints "
            "--independent zoo/indep-01,zoo/indep-02,zoo/indep-03,zoo/indep-04,zoo/indep-05 "
            "--out build/examples/calibration-5.json", cheap=True),
    Example("python -m verifier_client calibrate --fingerprints zoo/fingerprints "
            "--url http://127.0.0.1:8000 --model indep-01,indep-02,indep-03 --repeats 10 "
            "--out build/examples/calibration-remote.json", note="models on a server"),
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "calibrate", "the null: independent models' matching rates",
                    "Measure independent models on every fingerprint set and write the "
                    "calibration file the verdicts decide with (docs/design.md 3.5): the rates, "
                    "the logit-normal null, the legacy thresholds. With --repository, the "
                    "population manifest's calibration negatives (never a held-out model).",
                    EXAMPLES)
    p.add_argument("--fingerprints", required=True, action=CommaList, metavar="FILE_OR_DIR",
                   help="fingerprint set files, or folders of *.safetensors sets")
    p.add_argument("--repository", type=existing_repository, default=None, metavar="DIR",
                   help="a zoo with population.json: calibrate on its calibration negatives")
    p.add_argument("--independent", action=CommaList, item=existing_entry, default=[],
                   metavar="REPO/NAME", help="independent models, measured in-process")
    p.add_argument("--url", default=None, help="server holding remote independent models")
    p.add_argument("--model", action=CommaList, default=[], metavar="NAME",
                   help="independent models on --url, measured over HTTP")
    p.add_argument("--repeats", type=positive_int, default=1,
                   help="queries per set and model, averaged (remote models, and local ones "
                        "with randomized preprocessing; default 1)")
    p.add_argument("--alpha", type=alpha_value, default=DEFAULT_ALPHA,
                   help=f"false-positive rate of the fitted threshold (default {DEFAULT_ALPHA})")
    p.add_argument("--rule", choices=RULES, default="conservative",
                   help="which threshold decides: max (paper), fit, or conservative = the "
                        "larger (default)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of local randomized preprocessing (default 0)")
    p.add_argument("--out", required=True, type=output_file, help="calibration.json to write")
    add_client_arguments(p)
    p.set_defaults(run=run)


def existing_repository(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: not a folder")
    return path


def run(args: argparse.Namespace) -> int:
    from verifier_client.calibration import IndependentSource, calibrate, write_calibration
    from verifier_client.fingerprint_set import load_sets

    if bool(args.url) != bool(args.model):
        raise UserError("--url and --model go together (remote independent models)")
    independent = list(args.independent)
    if args.repository is not None:
        from models.zoo import load_manifest

        independent += [args.repository / name
                        for name in load_manifest(args.repository).names("calibration-negative")]
    if not independent and not args.model:
        raise UserError("give independent models: --repository ZOO, --independent REPO/NAME,... "
                        "and/or --url URL --model NAME,...")
    sources = [IndependentSource(path.name, path=path) for path in independent]
    sources += [IndependentSource(name, url=args.url, model=name) for name in args.model]
    sets = load_sets(args.fingerprints)
    document = calibrate(sets, sources, repeats=args.repeats, alpha=args.alpha, rule=args.rule,
                         seed=args.seed, client_options=client_kwargs(args),
                         progress=lambda name: print(f"measuring {name}", flush=True))
    write_calibration(args.out, document)
    print_calibration(document)
    print(f"wrote {args.out}")
    return 0


def print_calibration(document: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"calibration: {len(document['independent'])} independent model(s), "
                        f"alpha {document['alpha']:g}, rule {document['rule']}")
    for column in ("method", "n", "indep. [min, max]", "mean ± std", "fit", "threshold"):
        table.add_column(column, justify="left" if column in ("method", "fit") else "right")
    for method, entry in document["methods"].items():
        fit = entry["fit"]
        params = ", ".join(f"{v:.4g}" for v in fit["params"].values())
        how = "max" if entry["threshold_method"] == "independent-max" else "fit"
        table.add_row(method, str(entry["n"]), f"[{entry['min']:.2f}, {entry['max']:.2f}]",
                      f"{entry['mean']:.3f} ± {entry['std']:.3f}",
                      f"{fit['family']}({params})" + (" *" if fit["note"] else ""),
                      f"{entry['threshold']:.3f} {how}")
    console = Console()
    print_rich(table, console)
    notes = {entry["fit"]["note"] for entry in document["methods"].values() if entry["fit"]["note"]}
    for note in sorted(notes):
        console.print(f"* {note}")
