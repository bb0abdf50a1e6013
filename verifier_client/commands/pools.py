"""``python -m verifier_client pools``: CAE's surrogate and reference model pools for a target."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from models.cli_support import (
    Example,
    add_command,
    alias,
    existing_entry,
    fraction,
    non_negative_int,
    output_dir,
    positive_int,
    print_json,
)
from models.errors import UserError
from verifier_client.pool_settings import PoolSettings

POOLS_FILE = "pools.json"
EXAMPLES = [
    Example("python -m verifier_client pools --target zoo/target "
            "--out-surrogates build/pools/surrogates --out-references build/pools/references",
            note="what make zoo builds for CAE, ~10 min"),
    Example("python -m verifier_client pools --target zoo/target --out-surrogates build/sur "
            "--out-references build/ref --distill 2 --finetune 1 --prune 1 --references 3 "
            "--seed 2000"),
]


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = PoolSettings()
    p = add_command(subparsers, "pools", "build CAE's surrogate and reference model pools",
                    "Surrogates are derived from the target (distilled on its labels, "
                    "fine-tuned, pruned); references are trained independently with seeds from "
                    "--seed on (keep them apart from calibration models). Writes repository "
                    "entries with their role in lineage, and pools.json listing which is which.",
                    EXAMPLES)
    p.add_argument("--target", required=True, type=existing_entry, metavar="REPO/NAME",
                   help="the owner's model the surrogates derive from")
    p.add_argument("--out-surrogates", required=True, type=output_dir, metavar="REPO",
                   help="repository folder for the surrogates")
    p.add_argument("--out-references", required=True, type=output_dir, metavar="REPO",
                   help="repository folder for the references")
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
    p.add_argument("--finetune-epochs", type=positive_int, default=defaults.finetune_epochs,
                   help=f"epochs of the fine-tuned surrogates (default "
                        f"{defaults.finetune_epochs})")
    p.add_argument("--fraction", type=fraction, default=defaults.fraction,
                   help=f"training-data fraction per model (default {defaults.fraction})")
    p.add_argument("--lr", type=float, default=defaults.lr,
                   help=f"learning rate of training from scratch (default {defaults.lr})")
    p.add_argument("--finetune-lr", type=float, default=defaults.finetune_lr,
                   help=f"learning rate of fine-tuning (default {defaults.finetune_lr})")
    p.add_argument("--prune-rate", type=float, default=defaults.prune_rate,
                   help=f"pruning rate of the pruned surrogates (default "
                        f"{defaults.prune_rate})")
    p.add_argument("--seed", type=int, default=defaults.seed,
                   help=f"first reference seed; surrogates use SEED+100.. (default "
                        f"{defaults.seed})")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="folder holding the dataset")
    p.add_argument("--samples", type=positive_int, default=2000, metavar="N",
                   help="test images for each entry's recorded accuracy (default 2000)")
    alias(p, "--test-count", dest="samples", type=positive_int)
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from models.config import load_config
    from models.datasets import load_dataset
    from models.entries import set_threads
    from verifier_client.pools import build_pools

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
    test = load_dataset(config.dataset, "test", args.data_root).take(args.samples)
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
