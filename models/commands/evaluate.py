"""``python -m models evaluate``: top-1/top-5 of an entry under a random transform.

Reports mean, sample standard deviation, min and max over ``--repeats`` independent draws (draw
``r`` seeded ``--seed + r``, every test image with its own parameters), next to the clean
accuracy on the same images. Without ``--transform`` the entry's own preprocessing from its
config is used (``transform_source: "config"``); ``--transform none`` evaluates clean. Any entry
works, ONNX-only ones (int8) included: the model runs through ``models.runtime.load_predictor``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from models.cli_support import (
    Example,
    add_command,
    add_transform_arguments,
    alias,
    given_transform_options,
    output_file,
    positive_int,
    print_json,
    transform_from_args,
)
from models.errors import UserError

DEFAULT_REPEATS = 5

EXAMPLES = [
    Example("python -m models evaluate --model zoo/csrp --repeats 2 --samples 500", cheap=True,
            note="behind the entry's own CSRP"),
    Example("python -m models evaluate --model zoo/target --transform 'csrp(sigma=1.3, p=8)' "
            "--repeats 3 --samples 1000 --out build/examples/evaluate.json", cheap=True),
    Example("python -m models evaluate --model zoo/int8 --transform none --samples 2000"),
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "evaluate", "accuracy under a random transform (mean, spread)",
                    "Top-1/top-5 of an entry over random transform draws, beside the clean "
                    "accuracy on the same test images.", EXAMPLES)
    p.add_argument("--model", required=True, metavar="REPO/NAME", help="entry to evaluate")
    add_transform_arguments(p, allow_none=True)
    p.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                   help="independent transform draws (default %(default)s)")
    p.add_argument("--samples", type=int, default=None, metavar="N",
                   help="first N test images (default: the whole test split)")
    p.add_argument("--seed", type=int, default=0, help="draw r uses seed + r")
    p.add_argument("--backend", choices=("onnx", "torch"), default=None,
                   help="runtime (default: the entry's config, else whichever file exists)")
    p.add_argument("--batch-size", type=positive_int, default=500,
                   help="images per inference batch (default 500)")
    p.add_argument("--data-root", default=None, help="folder holding the entry's dataset")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument("--out", dest="json_out", type=output_file, default=None, metavar="FILE",
                   help="also write the report (JSON) to this file, atomically")
    alias(p, "--json", dest="json_out", type=output_file)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from models.adapt import accuracy_under, as_transform
    from models.atomic import write_json
    from models.config import load_config
    from models.datasets import load_dataset
    from models.entries import set_threads
    from models.runtime import load_predictor

    config = load_config(args.model)
    if args.transform is None:
        if given_transform_options(args):
            transform_from_args(args)  # raises: options need a transform
        transform, source = as_transform(config.preprocessing, config.input_shape), "config"
    else:
        transform, source = transform_from_args(args, config.input_shape), "option"
    spec = None if transform is None else transform.spec()
    if args.repeats < 1:
        raise UserError(f"--repeats must be >= 1, got {args.repeats}")
    if args.samples is not None and args.samples < 1:
        raise UserError(f"--samples must be >= 1, got {args.samples}")
    set_threads(args.threads)
    predictor = load_predictor(args.model, backend=args.backend)
    test = load_dataset(config.dataset, "test", args.data_root)
    if args.samples is not None:
        test = test.take(args.samples)
    started = time.perf_counter()
    clean = accuracy_under(predictor.logits, test, None, 1, args.seed, args.batch_size)
    under = (accuracy_under(predictor.logits, test, transform, args.repeats, args.seed,
                            args.batch_size, backend=args.csrp_backend)
             if transform is not None else clean)
    report: dict[str, Any] = {
        "model": str(args.model), "dataset": config.dataset, "backend": predictor.backend,
        "samples": len(test), "data_source": test.source, "transform": spec,
        "transform_source": source,
        **under.summary(),
        "clean_top1": round(clean.top1, 4), "clean_top5": round(clean.top5, 4),
        "top1_drop": round(clean.top1 - under.top1, 4),
        "draws": [{"seed": s, "top1": round(t1, 4), "top5": round(t5, 4)}
                  for s, t1, t5 in zip(under.seeds, under.top1s, under.top5s, strict=True)],
        "seed": args.seed, "repeats_requested": args.repeats,
        "note": None if spec is not None else "no transform: one deterministic pass, spread 0",
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.json_out is not None:
        write_json(args.json_out, report)
    print_json(report)
    return 0
