"""``python -m verifier_client match``: in-process matching rate of a model on a fingerprint set."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from models.cli_support import (
    Example,
    add_command,
    add_transform_arguments,
    alias,
    existing_entry,
    given_transform_options,
    output_file,
    positive_int,
    transform_from_args,
)
from models.errors import UserError

EXAMPLES = [
    Example("python -m verifier_client match --fingerprints zoo/fingerprints/ipguard.safetensors "
            "--model zoo/target", cheap=True),
    Example("python -m verifier_client match --fingerprints zoo/fingerprints/ipguard.safetensors "
            "--model zoo/csrp --repeats 20 --out build/examples/match.json", cheap=True,
            note="behind the entry's own CSRP"),
    Example("python -m verifier_client match --fingerprints zoo/fingerprints/vce.safetensors "
            "--model zoo/target --transform 'csrp(sigma=1.3, p=8)' --repeats 20", cheap=True),
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers, "match", "matching rate of a local model on a fingerprint set (no server)",
        "Matching rate T = share of fingerprints the model labels as recorded, over R repeats "
        "(fresh randomness per repeat). Without --transform the model's own preprocessing from "
        "its config is applied; --transform none forces none.", EXAMPLES)
    p.add_argument("--fingerprints", required=True, type=Path, metavar="FILE",
                   help="one fingerprint set file")
    p.add_argument("--model", required=True, type=existing_entry, metavar="REPO/NAME",
                   help="the entry to match (in-process)")
    add_transform_arguments(p, allow_none=True, default_help="default: the model config's")
    p.add_argument("--repeats", type=positive_int, default=1,
                   help="repeats, each with fresh transform draws (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the transform draws")
    p.add_argument("--backend", choices=("onnx", "torch"), default=None,
                   help="inference backend (default: the model config's)")
    p.add_argument("--out", dest="json", type=output_file, default=None, metavar="FILE",
                   help="write the result (JSON)")
    alias(p, "--json", dest="json", type=output_file)
    p.set_defaults(run=run)


def chosen_spec(args: argparse.Namespace, own: dict[str, Any] | None
                ) -> tuple[dict[str, Any] | None, str]:
    """The preprocessing spec to apply and where it came from."""
    if args.transform is None:
        if given_transform_options(args):
            transform_from_args(args)  # raises: the options need --transform
        return own, "the model's own preprocessing (config.json)"
    transform = transform_from_args(args)
    spec = None if transform is None else transform.spec()
    return spec, "none (forced)" if spec is None else "command line"


def run(args: argparse.Namespace) -> int:
    from models.atomic import write_json
    from models.runtime import load_served_predictor
    from models.transforms import build_transform
    from verifier_client.fingerprint_set import FingerprintSet
    from verifier_client.matching import matching_rates

    fset = FingerprintSet.load(args.fingerprints)
    predictor = load_served_predictor(args.model, args.backend)
    fset.check_input_shape(predictor.config.input_shape, f"model {args.model}")
    spec, origin = chosen_spec(args, predictor.config.preprocessing)
    try:
        transform = build_transform(spec)
    except ValueError as error:
        raise UserError(f"bad transform: {error}") from None
    print(f"preprocessing: {json.dumps(spec)} ({origin})")
    result = matching_rates(predictor, fset, transform=transform, repeats=args.repeats,
                            seed=args.seed)
    summary = {**result.summary(), "model": str(args.model), "backend": predictor.backend,
               "fingerprints": str(args.fingerprints), "transform_origin": origin}
    print(f"{fset.method} on {args.model.name}: matching rate mean {result.mean:.4f} "
          f"std {result.std:.4f} min {result.min:.4f} max {result.max:.4f} "
          f"(n={result.n}, repeats={result.repeats})")
    if args.json is not None:
        write_json(args.json, summary)
        print(f"wrote {args.json}")
    return 0
