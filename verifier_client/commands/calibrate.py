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
    alias,
    existing_entry,
    output_file,
    print_rich,
)
from models.errors import UserError
from verifier_client.cli_options import (
    MAX_REPEATS,
    MAX_VOTES,
    add_client_arguments,
    alpha_value,
    bounded_int,
    client_kwargs,
    model_name,
    url_value,
    wait_for_server,
)

RULES = ("conservative", "max", "fit")
DEFAULT_ALPHA = 0.01
EXAMPLES = [
    Example("python -m verifier_client calibrate --fingerprints zoo/fingerprints "
            "--repository zoo --out build/examples/calibration.json", cheap=True,
            note="the manifest's calibration negatives, in-process"),
    Example("python -m verifier_client calibrate --fingerprints zoo/fingerprints "
            "--independent zoo/indep-01,zoo/indep-02,zoo/indep-03,zoo/indep-04,zoo/indep-05 "
            "--out build/examples/calibration-5.json", cheap=True),
    Example("python -m verifier_client calibrate --fingerprints zoo/fingerprints-eot "
            "--repository zoo --front 'csrp(sigma=1.1..1.35, p=1..8)' --votes 5 --repeats 10 "
            "--out zoo/calibration-eot.json",
            note="the null behind every corner and the centre of a CSRP family, as the adaptive "
                 "verifier queries"),
    Example("python -m verifier_client calibrate --fingerprints zoo/fingerprints-eot "
            "--repository zoo --front 'csrp(sigma=1.1..1.35, p=1..8)' --votes 5 --repeats 10 "
            "--reuse zoo/calibration-eot.json --out build/calibration-eot-grown.json",
            note="after the zoo grew: the models the earlier file holds are not measured again"),
    Example("python -m verifier_client calibrate --fingerprints zoo/fingerprints "
            "--url http://127.0.0.1:8000 --models indep-01,indep-02,indep-03 --repeats 10 "
            "--out build/examples/calibration-remote.json", note="models on a server"),
]
FOOTER = """A long calibration resumes: every finished model is kept in OUT.partial until the file
is written, and a rerun with the same sets, models and protocol measures only the rest. The
verdicts need at least 1/alpha - 1 models for the combined test (99 at alpha 0.01). To grow
a population, --reuse the earlier file: only the new models are measured."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "calibrate", "the null: independent models' matching rates",
                    "Measure independent models on every fingerprint set and write the "
                    "calibration file the verdicts decide with (docs/design.md 3.5): the rates, "
                    "the logit-normal null, the legacy thresholds. With --repository, the "
                    "population manifest's calibration negatives (never a held-out model). With "
                    "--front, every negative is queried behind a transform or every corner and "
                    "the centre of a transform family, with --votes and --repeats: the protocol "
                    "a suspect must then be verified with (verify checks it).",
                    EXAMPLES, FOOTER)
    p.add_argument("--fingerprints", required=True, action=CommaList, metavar="FILE_OR_DIR",
                   help="fingerprint set files, or folders of *.safetensors sets")
    p.add_argument("--repository", type=existing_repository, default=None, metavar="DIR",
                   help="a zoo with population.json: calibrate on its calibration negatives")
    p.add_argument("--independent", action=CommaList, item=existing_entry, default=[],
                   metavar="REPO/NAME", help="independent models, measured in-process")
    p.add_argument("--url", default=None, type=url_value,
                   help="server holding remote independent models")
    p.add_argument("--models", action=CommaList, item=model_name, default=[], metavar="A,B",
                   help="independent models on --url, measured over HTTP")
    alias(p, "--model", dest="models", action=CommaList)
    p.add_argument("--repeats", type=bounded_int(1, MAX_REPEATS), default=1,
                   help="queries per set and model, averaged (remote models, and local ones "
                        "behind a front or with randomized preprocessing; default 1)")
    p.add_argument("--front", default=None, metavar="SPEC",
                   help="query every in-process negative behind this transform or family, "
                        "e.g. 'csrp(sigma=1.23, p=6)' or 'csrp(sigma=1.1..1.35, p=1..8)' "
                        "(default: none)")
    p.add_argument("--votes", type=bounded_int(1, MAX_VOTES), default=1, metavar="K",
                   help="ask every fingerprint K times per repeat and score the modal label, "
                        "as verify --votes K will (default 1)")
    p.add_argument("--alpha", type=alpha_value, default=DEFAULT_ALPHA,
                   help=f"false-positive rate of the fitted threshold (default {DEFAULT_ALPHA})")
    p.add_argument("--rule", choices=RULES, default="conservative",
                   help="which threshold decides: max (paper), fit, or conservative = the "
                        "larger (default)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of local randomized preprocessing (default 0)")
    p.add_argument("--reuse", type=Path, default=None, metavar="EARLIER.json",
                   help="take the rates of models an earlier calibration file already measured "
                        "(same protocol, same sets by sha256) and measure only the others; the "
                        "new file records which, and the earlier file's code version")
    p.add_argument("--out", required=True, type=output_file, help="calibration.json to write")
    add_client_arguments(p)
    p.set_defaults(run=run)


def existing_repository(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: not a folder")
    return path


def run(args: argparse.Namespace) -> int:
    from verifier_client.calibration import (
        IndependentSource,
        calibrate,
        load_calibration,
        write_calibration,
    )
    from verifier_client.fingerprint_set import load_sets

    if bool(args.url) != bool(args.models):
        raise UserError("--url and --models go together (remote independent models)")
    independent = list(args.independent)
    if args.repository is not None:
        from models.zoo import load_manifest

        independent += [args.repository / name
                        for name in load_manifest(args.repository).names("calibration-negative")]
    if not independent and not args.models:
        raise UserError("give independent models: --repository ZOO, --independent REPO/NAME,... "
                        "and/or --url URL --models A,B")
    sources = [IndependentSource(path.name, path=path) for path in independent]
    sources += [IndependentSource(name, url=args.url, model=name) for name in args.models]
    sets = load_sets(args.fingerprints)
    if args.url:
        wait_for_server(args)
    document = calibrate(sets, sources, repeats=args.repeats, alpha=args.alpha, rule=args.rule,
                         seed=args.seed, client_options=client_kwargs(args),
                         progress=lambda name: print(f"measuring {name}", flush=True),
                         front=args.front, votes=args.votes,
                         partial=args.out.with_name(args.out.name + ".partial"),
                         reuse=args.reuse)
    if _adds_nothing(document, args):
        print_calibration(load_calibration(args.out))
        print(f"{args.out} already holds every model under this protocol: left as it is")
        return 0
    write_calibration(args.out, document)
    print_calibration(document)
    print(f"wrote {args.out}")
    return 0


def _adds_nothing(document: dict, args: argparse.Namespace) -> bool:
    """Whether ``--reuse FILE --out FILE`` would rewrite FILE with nothing measured and nothing
    changed: then the file is kept as it is, so its record of which code version measured
    which model is not replaced by "all taken from the previous version of this file"."""
    from verifier_client.calibration import load_calibration

    reused = document.get("reused")
    if args.reuse is None or not isinstance(reused, dict) or \
            args.reuse.resolve() != args.out.resolve():
        return False
    earlier = load_calibration(args.out)
    return (len(reused["models"]) == len(document["independent"])
            and [d.get("name") for d in earlier.get("independent", [])]
            == [d["name"] for d in document["independent"]]
            and earlier.get("alpha") == document["alpha"]
            and earlier.get("rule") == document["rule"])


def print_calibration(document: dict) -> None:
    """The null each verdict decides with: per method the negatives' rates, the logit-normal
    fit and its Shapiro-Wilk check (the smallest p over its fronts: one rejection means rank
    p-values, as verify decides), the least favourable front; then what the number of models
    allows, with a warning below what alpha needs."""
    from rich.console import Console
    from rich.table import Table

    from verifier_client.decision import member_nulls, normal_model_ok, worst_shapiro
    from verifier_client.protocol import Protocol
    from verifier_client.verdict import combined_models_needed

    protocol = Protocol.from_dict(document.get("protocol"))
    models = len(document["independent"])
    alpha = float(document["alpha"])
    table = Table(title=f"calibration: {models} negative(s), {protocol.describe()}")
    for column in ("method", "n", "negatives [min, max]", "mean ± std", "logit-normal null",
                   "Shapiro p (worst front)", "decides by", "least favourable front"):
        table.add_column(column, justify="left" if column in (
            "method", "decides by", "least favourable front", "logit-normal null") else "right")
    for method, entry in document["methods"].items():
        null = entry.get("null") or {}
        # verify decides by rank if any front rejects the null; too few models fit none
        nulls = member_nulls(entry) if entry.get("null") else []
        shapiro, normal = worst_shapiro(nulls), normal_model_ok(nulls)
        table.add_row(method, str(entry["n"]), f"[{entry['min']:.2f}, {entry['max']:.2f}]",
                      f"{entry['mean']:.3f} ± {entry['std']:.3f}",
                      f"logit ~ N({null.get('mean_logit', float('nan')):.2f}, "
                      f"{null.get('sd_logit', float('nan')):.2f})" if null else "-",
                      "-" if shapiro is None else f"{shapiro:.2g}",
                      "parametric" if normal else "rank", str(entry.get("least_favourable",
                                                                      "none")))
    console = Console(width=max(120, Console().width))
    print_rich(table, console)
    reused = document.get("reused")
    if isinstance(reused, dict):
        console.print(f"{len(reused['models'])} of {models} models' rates taken from "
                      f"{reused['file']} (code version {reused['code_version']}), the others "
                      "measured now", soft_wrap=True)
    needed = combined_models_needed(alpha)
    floor = 1 / (models + 1)
    console.print(f"combined test (what verify decides with by default): exact rank p-value, "
                  f"floor 1/(n+1) = {floor:.3g} with {models} models", soft_wrap=True)
    if models < needed:
        console.print(f"[bold yellow]warning: {models} models cannot certify alpha {alpha:g}: "
                      f"the combined test needs {needed}; verify falls back to the parametric "
                      "nulls, whose guarantee rests on the logit-normal model[/bold yellow]",
                      soft_wrap=True)
    rank_only = [m for m, e in document["methods"].items()
                 if e.get("null") and not normal_model_ok(member_nulls(e))]
    holm_first = alpha / max(len(document["methods"]), 1)
    if rank_only and floor > holm_first:
        console.print(f"[yellow]{', '.join(rank_only)}: the logit-normal null is rejected, so "
                      f"these decide by rank, and a rank p-value cannot reach Holm's first "
                      f"level {holm_first:.2g} with {models} models: alone they can never say "
                      f"stolen[/yellow]", soft_wrap=True)

