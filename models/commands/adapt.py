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

from models.adapt import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_LR,
    DEFAULT_REPEATS,
    adapt_entry,
    check_adapt,
    check_spec_fits,
)
from models.cli_support import (
    add_transform_arguments,
    out_entry,
    positive_int,
    print_json,
    spec_from_args,
)
from models.datasets import load_dataset
from models.entries import set_threads
from models.errors import UserError
from models.modify import resolve_parent
from models.repository import WEIGHTS_FILE, load_model
from models.training import seed_everything

EXAMPLES = """examples:
  python -m models adapt --from zoo/target --transform csrp --sigma 1.16 --p 3 \\
      --fraction 0.05 --epochs 3 --lr 0.01 --seed 0 --out zoo/pirate-csrp-ft
  python -m models adapt --from zoo/target --transform csrp --sigma 1.16 --p 3 --epochs 0 \\
      --out zoo/pirate-csrp                 # data-free: same weights, CSRP in front
  python -m models adapt --from zoo/target --transform rdg --distort-limit 0.25 \\
      --num-cells 10 --fraction 0.05 --epochs 3 --out zoo/pirate-rdg-ft"""

def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("adapt", help="pirate: fine-tune a copy on CSRP/RDG-augmented data",
                              description="Adapt a stolen entry to a random preprocessing "
                              "(data-limited pirate; --epochs 0 = data-free).",
                              epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="parent", required=True, metavar="REPO/MODEL",
                   help="parent entry (needs model.safetensors unless --epochs 0)")
    p.add_argument("--out", required=True, type=out_entry, metavar="REPO/NAME",
                   help="new entry to write (replaced whole if it exists)")
    add_transform_arguments(p, allow_none=False)
    p.add_argument("--fraction", type=float, default=0.05,
                   help="seeded share of the training set the pirate holds, in (0, 1] "
                   "(default %(default)s)")
    p.add_argument("--epochs", type=int, default=2, help="0 = data-free (default %(default)s)")
    p.add_argument("--lr", type=float, default=DEFAULT_LR,
                   help="peak learning rate (default %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE)
    p.add_argument("--seed", type=int, default=0,
                   help="data subset, batch order, augmentation and transform draws")
    p.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                   help="transform draws for the accuracy metrics (default %(default)s)")
    p.add_argument("--test-samples", type=positive_int, default=None, metavar="N",
                   help="evaluate on the first N test images only (default: all)")
    p.add_argument("--data-root", default=None,
                   help="folder holding the parent's dataset (default: its usual places)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch CPU threads (on a loaded machine 1 can be several times faster)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    if spec is None:
        raise UserError("adapt needs --transform csrp or rdg (plain fine-tuning of all layers is "
                        "`python -m models modify ftal`)")
    check_adapt(args.epochs, args.fraction, args.lr, args.batch_size, args.repeats)
    config, _ = resolve_parent(args.parent, args.out)
    check_spec_fits(spec, config.input_shape)
    if args.epochs > 0:
        load_model(args.parent)  # refuses missing, pickled or mismatched weights
    set_threads(args.threads)
    train = load_dataset(config.dataset, "train", args.data_root) if args.epochs else None
    test = load_dataset(config.dataset, "test", args.data_root)
    if args.test_samples:
        test = test.take(args.test_samples)
    seed_everything(args.seed)
    started = time.perf_counter()
    result = adapt_entry(args.parent, args.out, spec, train, test, epochs=args.epochs,
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
