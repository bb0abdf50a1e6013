"""``python -m verifier_client match``: in-process matching rate of a model on a fingerprint set."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from models.atomic import write_json
from models.commands.common import existing_entry, positive_int
from models.errors import UserError
from models.runtime import load_predictor
from models.transforms import build_transform
from verifier_client.fingerprint_set import FingerprintSet
from verifier_client.matching import matching_rates

EXAMPLES = """examples:
  python -m verifier_client match --fingerprints ipguard.safetensors --model zoo/target
  python -m verifier_client match --fingerprints ipguard.safetensors --model zoo/target \\
      --transform csrp --sigma 1.16 --p 3 --repeats 100 --json mr.json
  python -m verifier_client match --fingerprints vce.safetensors --model zoo/pirate-csrp \\
      --transform none"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "match", help="matching rate of a local model on a fingerprint set (no server)",
        description="Matching rate T = share of fingerprints the model labels as recorded, over "
                    "R repeats (fresh randomness per repeat). Without --transform the model's "
                    "own preprocessing from its config is applied; --transform none forces none.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fingerprints", required=True, type=Path, metavar="FILE")
    p.add_argument("--model", required=True, type=existing_entry, metavar="REPO/NAME")
    p.add_argument("--transform", choices=("csrp", "rdg", "none"), default=None,
                   help="preprocessing in front of the model (default: the model config's)")
    p.add_argument("--sigma", type=float, default=None, help="CSRP scale limit (> 1)")
    p.add_argument("--p", type=int, default=None, help="CSRP padding (>= 0)")
    p.add_argument("--distort-limit", type=float, default=None, help="RDG distortion limit")
    p.add_argument("--num-cells", type=int, default=None, help="RDG cells per axis")
    p.add_argument("--repeats", type=positive_int, default=1)
    p.add_argument("--seed", type=int, default=0, help="seed of the transform draws")
    p.add_argument("--backend", choices=("onnx", "torch"), default=None,
                   help="inference backend (default: the model config's)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the result")
    p.set_defaults(run=run)


def transform_spec(args: argparse.Namespace, own: dict[str, Any] | None
                   ) -> tuple[dict[str, Any] | None, str]:
    """The preprocessing spec to apply and where it came from."""
    csrp_given = args.sigma is not None or args.p is not None
    rdg_given = args.distort_limit is not None or args.num_cells is not None
    if args.transform != "csrp" and csrp_given:
        raise UserError("--sigma/--p belong to --transform csrp")
    if args.transform != "rdg" and rdg_given:
        raise UserError("--distort-limit/--num-cells belong to --transform rdg")
    if args.transform is None:
        return own, "the model's own preprocessing (config.json)"
    if args.transform == "none":
        return None, "none (forced)"
    if args.transform == "csrp":
        if args.sigma is None or args.p is None:
            raise UserError("--transform csrp needs --sigma and --p")
        return {"name": "csrp", "sigma": args.sigma, "p": args.p}, "command line"
    spec: dict[str, Any] = {"name": "rdg"}
    if args.distort_limit is not None:
        spec["distort_limit"] = args.distort_limit
    if args.num_cells is not None:
        spec["num_cells"] = args.num_cells
    return spec, "command line"


def run(args: argparse.Namespace) -> int:
    fset = FingerprintSet.load(args.fingerprints)
    predictor = load_predictor(args.model, args.backend)
    fset.check_input_shape(predictor.config.input_shape, f"model {args.model}")
    spec, origin = transform_spec(args, predictor.config.preprocessing)
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
