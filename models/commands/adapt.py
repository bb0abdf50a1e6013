"""``python -m models adapt``: the data-limited (or, with ``--epochs 0``, data-free) pirate.

Fine-tunes all layers of a stolen entry on CSRP- or RDG-augmented clean data (a seeded
``--fraction`` of the training split) and writes a new entry whose config carries the transform
as its preprocessing, so the server applies it at inference. Bad input (sigma <= 1, p < 0, a
padding that makes the image vanish, fraction outside (0, 1], unknown transform, unknown parent,
--out equal to --from) is one error line and exit 2, before anything is computed or written.
"""

from __future__ import annotations

import argparse
import time

from models.cli_support import (
    Example,
    add_command,
    add_transform_arguments,
    alias,
    out_entry,
    positive_int,
    print_json,
    transform_from_args,
)

EXAMPLES = [
    Example("python -m models adapt --from zoo/target --transform 'csrp(sigma=1.23, p=6)' "
            "--epochs 0 --samples 500 --repeats 2 --out build/examples/repo/csrp", cheap=True,
            note="data-free: the same weights behind CSRP"),
    Example("python -m models adapt --from zoo/target --transform 'csrp(sigma=1.23, p=6)' "
            "--fraction 0.05 --epochs 3 --lr 0.01 --seed 7 --out build/examples/repo/csrp-ft"),
    Example("python -m models adapt --from zoo/target --transform 'rdg(distort_limit=0.25)' "
            "--fraction 0.05 --epochs 3 --out build/examples/repo/rdg-ft"),
]
DEFAULT_LR, DEFAULT_BATCH_SIZE, DEFAULT_REPEATS = 0.01, 128, 5


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "adapt", "pirate: fine-tune a copy on CSRP/RDG-augmented data",
                    "Adapt a stolen entry to a random preprocessing (data-limited pirate; "
                    "--epochs 0 = data-free) and write an entry that is served behind it.",
                    EXAMPLES)
    p.add_argument("--from", dest="parent", required=True, metavar="REPO/MODEL",
                   help="parent entry (needs model.safetensors unless --epochs 0)")
    p.add_argument("--out", required=True, type=out_entry, metavar="REPO/NAME",
                   help="new entry to write (replaced whole if it exists)")
    add_transform_arguments(p, allow_none=False)
    p.add_argument("--fraction", type=float, default=0.05, metavar="SHARE",
                   help="seeded share of the training set the pirate holds, in (0, 1] "
                   "(default %(default)s)")
    p.add_argument("--epochs", type=int, default=2, help="0 = data-free (default %(default)s)")
    p.add_argument("--lr", type=float, default=DEFAULT_LR,
                   help="peak learning rate (default %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE,
                   help=f"batch (default {DEFAULT_BATCH_SIZE})")
    p.add_argument("--seed", type=int, default=0,
                   help="data subset, batch order, augmentation and transform draws")
    p.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                   help="transform draws for the accuracy metrics (default %(default)s)")
    p.add_argument("--samples", type=positive_int, default=None, metavar="N",
                   help="evaluate on the first N test images only (default: all)")
    alias(p, "--test-samples", dest="samples", type=positive_int)
    p.add_argument("--data-root", default=None,
                   help="folder holding the parent's dataset (default: its usual places)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch CPU threads (on a loaded machine 1 can be several times faster)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from models.adapt import adapt_entry, check_adapt
    from models.datasets import load_dataset
    from models.entries import set_threads
    from models.errors import UserError
    from models.modify import resolve_parent
    from models.repository import WEIGHTS_FILE, load_model
    from models.training import seed_everything

    check_adapt(args.epochs, args.fraction, args.lr, args.batch_size, args.repeats)
    config, _ = resolve_parent(args.parent, args.out)
    transform = transform_from_args(args, config.input_shape)  # parsed and checked once
    if transform is None:
        raise UserError("adapt needs --transform csrp or rdg (plain fine-tuning of all layers is "
                        "`python -m models modify ftal`)")
    if args.epochs > 0:
        load_model(args.parent)  # refuses missing, pickled or mismatched weights
    set_threads(args.threads)
    train = load_dataset(config.dataset, "train", args.data_root) if args.epochs else None
    test = load_dataset(config.dataset, "test", args.data_root)
    if args.samples:
        test = test.take(args.samples)
    seed_everything(args.seed)
    started = time.perf_counter()
    result = adapt_entry(args.parent, args.out, transform, train, test, epochs=args.epochs,
                         fraction=args.fraction, lr=args.lr, seed=args.seed,
                         batch_size=args.batch_size, repeats=args.repeats,
                         backend=args.csrp_backend)
    m = result.metrics
    print_json({
        "out": str(args.out), "parent": str(args.parent),
        "modification": result.lineage.modification, "preprocessing": result.preprocessing,
        "parameters": result.lineage.parameters, "seed": result.lineage.seed,
        "has_weights": (args.out / WEIGHTS_FILE).is_file(),
        **{k: m.get(k) for k in (
            "parent_test_top1", "test_top1", "parent_transform_top1",
            "parent_transform_top1_std", "transform_top1", "transform_top1_std",
            "transform_repeats", "agreement_with_parent", "weight_relative_change",
            "test_samples", "train_seconds")},
        "seconds": round(time.perf_counter() - started, 1)})
    return 0
