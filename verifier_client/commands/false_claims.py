"""``python -m verifier_client false-claims``: a false accuser's transferable samples against
the zoo's innocents, before and after the defence (``verifier_client.studies.false_claims``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from models.cli_support import Example, add_command, output_dir, positive_int
from verifier_client.cli_options import alpha_value
from verifier_client.commands.verify import DEFAULT_ALPHA

EXAMPLES = [
    Example("python -m verifier_client generate --method transfer --target zoo/target --n 100 "
            "--seed 13 --out build/false-claims/transfer.safetensors",
            note="the accuser's set, crafted on its own model (about 5 min on 2 cores)"),
    Example("python -m verifier_client false-claims --repository zoo --fingerprints "
            "build/false-claims/transfer.safetensors --out results/false-claims"),
]
FOOTER = """Every suspect is an innocent of the zoo (its held-out negatives), so every "stolen" is
a false claim. Nulls: the 20 calibration models that match the set least (an accuser's own
choice), the held-out VGG/MobileNets against the ResNet-20 innocents (an accuser's choice of
architectures), and every calibration negative (the verifier's choice: the defence)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "false-claims",
                    "how often a false accuser gets innocents called stolen, and the defence",
                    "Decide every held-out innocent against a claimant's transferable set "
                    "(generate --method transfer) with the verify code, under nulls the "
                    "accuser chose and under the verifier's own; check the set's commitment. "
                    "Writes false-claims.json and .md.", EXAMPLES, FOOTER)
    p.add_argument("--repository", type=Path, default=Path("zoo"), metavar="DIR",
                   help="the zoo, with population.json (default zoo)")
    p.add_argument("--fingerprints", required=True, type=Path, metavar="FILE",
                   help="the accuser's set")
    p.add_argument("--accuser", default="target", metavar="NAME",
                   help="the accuser's registered model, the set was made on (default target)")
    p.add_argument("--null-size", type=positive_int, default=20, metavar="K",
                   help="models the accuser picks for its own null (default 20)")
    p.add_argument("--alpha", type=alpha_value, default=DEFAULT_ALPHA,
                   help=f"family-wise false-accusation rate (default {DEFAULT_ALPHA})")
    p.add_argument("--out", type=output_dir, default=Path("build/false-claims"),
                   help="output folder (default build/false-claims)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from models.atomic import write_json, write_text
    from models.zoo import load_manifest
    from verifier_client.fingerprint_set import FingerprintSet
    from verifier_client.studies.false_claims import false_claims, to_markdown

    manifest = load_manifest(args.repository)
    fset = FingerprintSet.load(args.fingerprints)
    heldout = manifest.names("heldout-negative")
    architectures = {n: manifest.entry(n)["arch"] for n in [*heldout, args.accuser]}
    args.out.mkdir(parents=True, exist_ok=True)
    registry = args.out / "commitments.json"
    registry.unlink(missing_ok=True)
    report = false_claims(args.repository, fset, accuser=args.accuser,
                          calibration=manifest.names("calibration-negative"), heldout=heldout,
                          architectures=architectures, alpha=args.alpha,
                          null_size=args.null_size, registry=registry,
                          on_model=lambda name: print(f"measured {name}", flush=True))
    report.update(zoo=str(args.repository), manifest_sha256=manifest.sha256)
    write_json(args.out / "false-claims.json", report)
    text = to_markdown(report)
    write_text(args.out / "false-claims.md", text)
    print(text)
    print(f"wrote {args.out}/false-claims.{{json,md}}")
    return 0
