"""``python -m verifier_client commit``: commit fingerprint sets to the claimant's registered
model before any verification (``verifier_client.commitment``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from models.cli_support import CommaList, Example, add_command, existing_entry

EXAMPLES = [
    Example("python -m verifier_client commit --fingerprints zoo/fingerprints --model zoo/target "
            "--registry build/examples/commitments.json --claimant owner", cheap=True),
]
FOOTER = """A set is committed only if the registered model gives every sample its recorded label
(a set is made on its target; one crafted on another model, e.g. the suspect, is refused).
verify --commitments REGISTRY [--committed-before TIME] then uses committed sets only."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "commit", "commit fingerprint sets to the registered model",
                    "Record each set's SHA-256, method and size, the claimant's registered "
                    "model (name and SHA-256 of its model.onnx) and the time, in a registry "
                    "that verify --commitments checks (the false-claim defence of Liu et al., "
                    "USENIX Security 2024).", EXAMPLES, FOOTER)
    p.add_argument("--fingerprints", required=True, action=CommaList, metavar="FILE_OR_DIR",
                   help="fingerprint sets (files or folders of .safetensors)")
    p.add_argument("--model", required=True, type=existing_entry, metavar="REPO/NAME",
                   help="the claimant's registered model")
    p.add_argument("--registry", required=True, type=Path, metavar="FILE",
                   help="the commitment registry (created if missing)")
    p.add_argument("--claimant", default="", help="who commits (recorded)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from verifier_client.commitment import commit_set
    from verifier_client.fingerprint_set import load_sets

    for fset in load_sets(args.fingerprints):
        record = commit_set(fset, args.model, args.registry, args.claimant)
        print(f"committed {fset.name} ({record.method}, n={record.n}, sha256 "
              f"{record.set_sha256[:12]}) to {record.model} at {record.committed.isoformat()}")
    return 0
