"""``python -m verifier_client validate``: the verdict procedure's error rates, out of sample."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from models.cli_support import CommaList, Example, add_command, alias, output_dir
from verifier_client.cli_options import add_eot_arguments, alpha_value
from verifier_client.commands.verify import DECIDERS, DEFAULT_ALPHA

ZOO_CSRP = "csrp(sigma=1.23, p=6)"
EXAMPLES = [
    Example("python -m verifier_client validate --repository zoo --out results/validation",
            note="held-out innocents as they are, every pirate (plain sets, or the EOT sets "
                 "behind a randomized front)"),
    Example("python -m verifier_client validate --repository zoo --serve-behind "
            "'none;csrp(sigma=1.23, p=6);csrp(sigma=1.16, p=3);csrp(sigma=1.3, p=8)' "
            "--out results/validation", note="the README's tables (about an hour on 2 cores)"),
]
FOOTER = """The same decision code as verify --adaptive. Innocents are served behind each
--serve-behind front; each calibration negative is also decided against the calibration
without it (leave-one-out). Measured outcomes are cached under OUT/cache: a rerun resumes."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "validate",
                    "false accusations and catch rates of the verdicts, out of sample",
                    "Out-of-sample validation of the verdict procedure on the zoo's population: "
                    "model-level false accusations of the held-out negatives and, left out in "
                    "turn, of the calibration negatives, as they are and behind randomized "
                    "fronts, against nominal alpha with exact intervals; and the share of each "
                    "attack category caught. Writes validation.json, .md, .csv.",
                    EXAMPLES, FOOTER)
    p.add_argument("--repository", type=Path, default=Path("zoo"), metavar="DIR",
                   help="the zoo, with population.json (default zoo)")
    alias(p, "--zoo", dest="repository", type=Path)
    p.add_argument("--fingerprints", type=Path, default=None, metavar="DIR",
                   help="plain fingerprint sets (default: REPOSITORY/fingerprints)")
    p.add_argument("--calibration", type=Path, default=None, metavar="FILE",
                   help="their calibration (default: REPOSITORY/calibration.json)")
    add_eot_arguments(p)
    p.add_argument("--serve-behind", action=CommaList, separator=";", default=["none"],
                   metavar="SPEC;SPEC",
                   help="fronts the innocents are served behind, ';'-separated; 'none' = as "
                        f"they are (default none; the README adds {ZOO_CSRP} and two others)")
    p.add_argument("--alpha", type=alpha_value, default=DEFAULT_ALPHA,
                   help=f"family-wise false-accusation rate (default {DEFAULT_ALPHA})")
    p.add_argument("--decide-by", choices=DECIDERS, default="auto",
                   help="what decides, as in verify (default auto)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals")
    p.add_argument("--out", type=output_dir, default=Path("build/validation"),
                   help="output folder (default build/validation)")
    p.set_defaults(run=run)


def verification_paths(args: argparse.Namespace) -> tuple[Any, Any]:
    """``(plain, eot)`` verification paths from ``--repository``, ``--fingerprints``,
    ``--calibration`` and the EOT arguments (``eot`` is ``None`` when the zoo has no EOT sets
    and none were named); an EOT calibration must have been measured behind a front."""
    from models.errors import UserError
    from verifier_client.calibration import load_calibration
    from verifier_client.fingerprint_set import load_sets
    from verifier_client.studies.validation import VerificationPath

    zoo = args.repository
    plain = VerificationPath.load("plain", load_sets([args.fingerprints or zoo / "fingerprints"]),
                                  load_calibration(args.calibration or zoo / "calibration.json"))
    eot_sets = args.eot_fingerprints or zoo / "fingerprints-eot"
    eot_calibration = args.eot_calibration or zoo / "calibration-eot.json"
    if not (eot_sets.exists() or args.eot_fingerprints or args.eot_calibration):
        return plain, None
    eot = VerificationPath.load("eot", load_sets([eot_sets]), load_calibration(eot_calibration))
    if not eot.protocol.randomized:
        raise UserError(f"{eot_calibration}: randomized suspects need a calibration "
                        "measured behind a front (calibrate --front ...)")
    return plain, eot


def run(args: argparse.Namespace) -> int:
    from models.errors import UserError
    from models.transforms import parse_spec_text
    from models.zoo import load_manifest
    from verifier_client.studies.validation import (
        Validation,
        to_markdown,
        validate,
        write_outputs,
    )

    zoo = args.repository
    manifest = load_manifest(zoo)
    fronts = []
    for text in args.serve_behind:
        try:
            fronts.append(None if text.strip() == "none" else parse_spec_text(text))
        except ValueError as error:
            raise UserError(f"--serve-behind {text!r}: {error}") from None
    plain, front = verification_paths(args)
    validation = Validation(plain, front, tuple(fronts), args.alpha, args.decide_by, args.seed,
                            cache=args.out / "cache")
    report = validate(zoo, validation, manifest.names("heldout-negative"),
                      manifest.names("calibration-negative"), manifest.categories(),
                      on_model=lambda name: print(f"decided {name}", flush=True))
    report.update(zoo=str(zoo), manifest_sha256=manifest.sha256)
    write_outputs(report, args.out)
    print(to_markdown(report))
    print(f"wrote {args.out}/validation.{{json,md,csv}}")
    return 0
