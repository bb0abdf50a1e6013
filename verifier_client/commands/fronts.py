"""``python -m verifier_client fronts``: pirate fronts side by side at CSRP's accuracy (CSRP,
RDG, JPEG, median, bit-depth, noise, a query detector alone and behind CSRP)."""

from __future__ import annotations

import argparse
from pathlib import Path

from models.cli_support import CommaList, Example, add_command, output_dir, positive_int
from verifier_client.cli_options import add_eot_arguments

EXAMPLES = [
    Example("python -m verifier_client fronts --repository zoo --out results/fronts",
            note="the README's table (about 40 minutes on 2 cores; resumes from OUT/cache)"),
    Example("python -m verifier_client fronts --repository zoo --transforms jpeg,median "
            "--repeats 2 --samples 500 --out build/fronts"),
]
FOOTER = """Each transform's strength is bisected until its top-1 on the first SAMPLES test images
matches CSRP's (the zoo's csrp entry); detectors are fitted per model on the pirate's 5% share
at a 1% clean false-positive rate. Stolen copies: the zoo's unmodified, int8, pruned and
fine-tuned positives; innocents: every held-out negative. Writes fronts.json and fronts.md."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "fronts", "pirate fronts at equal accuracy, every method's AUC",
                    "Compare pirate fronts at CSRP's accuracy: every method's AUC of stolen "
                    "copies against held-out innocents behind the same front, the share of "
                    "each set a query detector flags, and what verify --adaptive concludes "
                    "about the copy.", EXAMPLES, FOOTER)
    p.add_argument("--repository", type=Path, default=Path("zoo"), metavar="DIR",
                   help="the zoo, with population.json (default zoo)")
    p.add_argument("--fingerprints", type=Path, default=None, metavar="DIR",
                   help="fingerprint sets (default: REPOSITORY/fingerprints)")
    p.add_argument("--calibration", type=Path, default=None, metavar="FILE",
                   help="their calibration (default: REPOSITORY/calibration.json)")
    add_eot_arguments(p)
    p.add_argument("--transforms", action=CommaList, default=None, metavar="A,B",
                   help="transforms to match to CSRP (default rdg,jpeg,median,bitdepth,noise)")
    p.add_argument("--repeats", type=positive_int, default=5,
                   help="draws per model behind a randomized front (default 5)")
    p.add_argument("--samples", type=positive_int, default=2000,
                   help="test images for the accuracy match (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="draws, searches and detector fits")
    p.add_argument("--out", type=output_dir, default=Path("build/fronts"),
                   help="output folder (default build/fronts)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from models.atomic import write_json, write_text
    from models.zoo import load_manifest
    from verifier_client.commands.validate import verification_paths
    from verifier_client.studies.fronts import DEFAULT_TRANSFORMS, FRONTABLE, fronts_study
    from verifier_client.studies.fronts import to_markdown as fronts_markdown
    from verifier_client.studies.validation import Validation

    zoo = args.repository
    manifest = load_manifest(zoo)
    plain, eot = verification_paths(args)
    sets = plain.sets
    validation = Validation(plain, eot, cache=args.out / "cache" / "verdicts")
    categories = manifest.categories()
    positives = [n for c in FRONTABLE for n in categories.get(c, [])]
    report = fronts_study(zoo, sets, positives=positives,
                          innocents=manifest.names("heldout-negative"), validation=validation,
                          transforms=args.transforms or DEFAULT_TRANSFORMS,
                          repeats=args.repeats, samples=args.samples, seed=args.seed,
                          cache=args.out / "cache",
                          on_model=lambda what: print(what, flush=True))
    report.update(zoo=str(zoo), manifest_sha256=manifest.sha256)
    write_json(args.out / "fronts.json", report)
    text = fronts_markdown(report)
    write_text(args.out / "fronts.md", text)
    print(text)
    print(f"wrote {args.out}/fronts.{{json,md}}")
    return 0
