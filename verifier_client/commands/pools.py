"""``python -m verifier_client pools``: CAE's surrogate and reference model pools for a target."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from models.cli_support import (
    existing_entry,
    fraction,
    non_negative_int,
    output_dir,
    positive_int,
    print_json,
)
from models.datasets import load_dataset
from models.entries import set_threads
from models.errors import UserError
from models.repository import load_config
from verifier_client.pools import POOLS_FILE, PoolSettings, build_pools

EXAMPLES = """examples:
  python -m verifier_client pools --target zoo/target --out-surrogates zoo/pools \\
      --out-references zoo/pools --fraction 0.1 --epochs 2
  python -m verifier_client pools --target repo/target --out-surrogates sur --out-references ref \\
      --distill 2 --finetune 1 --prune 1 --references 3 --seed 2000"""


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = PoolSettings()
    p = subparsers.add_parser(
        "pools", help="build CAE's surrogate and reference model pools",
        description="Surrogates are derived from the target (distilled on its labels, "
                    "fine-tuned, pruned); references are trained independently with seeds from "
                    "--seed on (keep them apart from calibration models). Writes repository "
                    "entries with their role in lineage, and pools.json listing which is which.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", required=True, type=existing_entry, metavar="REPO/NAME")
    p.add_argument("--out-surrogates", required=True, type=output_dir, metavar="REPO")
    p.add_argument("--out-references", required=True, type=output_dir, metavar="REPO")
    p.add_argument("--pools-file", type=Path, default=None,
                   help=f"where to write the listing (default OUT_SURROGATES/{POOLS_FILE})")
    p.add_argument("--distill", type=non_negative_int, default=defaults.distill,
                   help=f"distilled surrogates (default {defaults.distill})")
    p.add_argument("--finetune", type=non_negative_int, default=defaults.finetune,
                   help=f"fine-tuned surrogates (default {defaults.finetune})")
    p.add_argument("--prune", type=non_negative_int, default=defaults.prune,
                   help=f"pruned surrogates (default {defaults.prune})")
    p.add_argument("--references", type=positive_int, default=defaults.references,
                   help=f"independent reference models (default {defaults.references})")
    p.add_argument("--epochs", type=positive_int, default=defaults.epochs,
                   help=f"epochs for distillation and references (default {defaults.epochs})")
    p.add_argument("--finetune-epochs", type=positive_int, default=defaults.finetune_epochs)
    p.add_argument("--fraction", type=fraction, default=defaults.fraction,
                   help=f"training-data fraction per model (default {defaults.fraction})")
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--finetune-lr", type=float, default=defaults.finetune_lr)
    p.add_argument("--prune-rate", type=float, default=defaults.prune_rate)
    p.add_argument("--seed", type=int, default=defaults.seed,
                   help=f"first reference seed; surrogates use SEED+100.. (default "
                        f"{defaults.seed})")
    p.add_argument("--data-root", default=None, help="folder holding the dataset")
    p.add_argument("--test-count", type=positive_int, default=2000,
                   help="test images for each entry's recorded accuracy (default 2000)")
    p.add_argument("--threads", type=positive_int, default=None)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    settings = PoolSettings(distill=args.distill, finetune=args.finetune, prune=args.prune,
                            references=args.references, epochs=args.epochs,
                            finetune_epochs=args.finetune_epochs, fraction=args.fraction,
                            lr=args.lr, finetune_lr=args.finetune_lr, prune_rate=args.prune_rate,
                            seed=args.seed)
    settings.check()
    config = load_config(args.target)
    for out in (args.out_surrogates, args.out_references):
        if out.resolve() == args.target.resolve():
            raise UserError(f"{out}: is the target entry itself; give a repository folder")
    train = load_dataset(config.dataset, "train", args.data_root)
    test = load_dataset(config.dataset, "test", args.data_root).take(args.test_count)
    started = time.perf_counter()
    manifest = build_pools(args.target, args.out_surrogates, args.out_references, train, test,
                           settings, pools_file=args.pools_file)
    where = args.pools_file or args.out_surrogates / POOLS_FILE
    print_json({"pools_file": str(where),
                "surrogates": [(s["name"], s["kind"], s["test_top1"])
                               for s in manifest["surrogates"]],
                "references": [(r["name"], r["seed"], r["test_top1"])
                               for r in manifest["references"]],
                "seconds": round(time.perf_counter() - started, 1)})
    return 0
