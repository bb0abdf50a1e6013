"""``python -m verifier_client validate``: the verdict procedure's error rates, out of sample."""

from __future__ import annotations

import argparse
from pathlib import Path

from models.cli_support import Example, alias, examples_epilog, output_dir, positive_int
from models.errors import UserError
from verifier_client.cli_options import alpha_value
from verifier_client.commands.verify import DECIDERS, DEFAULT_ALPHA

EXAMPLES = [
    Example("python -m verifier_client validate --repository zoo "
            "--outcomes results/roc/outcomes.npz --out build/examples/validation", cheap=True),
    Example("python -m verifier_client validate --repository zoo --outcomes "
            "results/roc/outcomes.npz --out results/validation", note="the README's tables"),
    Example("python -m verifier_client validate --repository zoo --repeats 20 --alpha 0.05 "
            "--out build/validation-5pct", note="measures the population first"),
]
FOOTER = """Calibrates on the manifest's calibration negatives and decides every held-out negative
and positive, then leaves each calibration negative out in turn; the same decision code as
verify."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate", help="false accusations and catch rates of the verdicts, out of sample",
        description="Out-of-sample validation of the verdict procedure on the zoo's population:"
                    " model-level false accusations on the held-out negatives and by "
                    "leave-one-out, against nominal alpha, and the share of each attack "
                    "category caught. Writes validation.json, .md, .csv.",
        epilog=examples_epilog(EXAMPLES, FOOTER),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repository", type=Path, default=Path("zoo"), metavar="DIR",
                   help="the zoo, with population.json (default zoo)")
    alias(p, "--zoo", dest="repository", type=Path)
    p.add_argument("--fingerprints", type=Path, default=None,
                   help="fingerprint sets (default: REPOSITORY/fingerprints)")
    p.add_argument("--outcomes", type=Path, default=None,
                   help="outcomes.npz written by `roc` (default: measure in-process now)")
    p.add_argument("--repeats", type=positive_int, default=20,
                   help="repeats when measuring (default 20)")
    p.add_argument("--alpha", type=alpha_value, default=DEFAULT_ALPHA,
                   help=f"family-wise false-accusation rate (default {DEFAULT_ALPHA})")
    p.add_argument("--decide-by", choices=DECIDERS, default="parametric",
                   help="which p-value decides (default parametric)")
    p.add_argument("--seed", type=int, default=0, help="seed of draws and bootstrap")
    p.add_argument("--out", type=output_dir, default=Path("build/validation"),
                   help="output folder")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from models.zoo import load_manifest
    from verifier_client.fingerprint_set import load_sets
    from verifier_client.population import load_outcomes, measure
    from verifier_client.validation import to_markdown, validate, write_outputs

    manifest = load_manifest(args.repository)
    sets = load_sets([args.fingerprints or args.repository / "fingerprints"])
    calibration = manifest.names("calibration-negative")
    heldout = manifest.names("heldout-negative")
    categories = manifest.categories()
    names = [*calibration, *heldout, *(m for ms in categories.values() for m in ms)]
    if args.outcomes is not None:
        outcomes = load_outcomes(args.outcomes)
        missing = [(n, s.method) for n in names for s in sets
                   if s.method not in outcomes.get(n, {})]
        if missing:
            raise UserError(f"{args.outcomes} has no outcomes for {missing[0][0]} / "
                            f"{missing[0][1]}: rerun `roc` on this zoo and these sets")
        if any(outcomes[n][s.method].shape[1] != s.n for n in names for s in sets):
            raise UserError(f"{args.outcomes} was measured with other fingerprint sets")
    else:
        outcomes = measure(args.repository, names, sets, args.repeats, seed=args.seed)
    report = validate(outcomes, sets, calibration, heldout, categories, alpha=args.alpha,
                      decide_by=args.decide_by, seed=args.seed)
    report.update(zoo=str(args.repository), manifest_sha256=manifest.sha256,
                  fingerprints=[{"method": s.method, "sha256": s.sha256} for s in sets])
    write_outputs(report, args.out)
    print(to_markdown(report))
    print(f"wrote {args.out}/validation.{{json,md,csv}}")
    return 0
