"""``python -m models modify {int8,prune,ftal}``: baseline pirate variants of an entry.

Each writes a new repository entry (atomically) whose lineage names the parent; the dataset and
labels come from the parent's config. Bad input (unknown parent, pickled weights, --out equal to
--from, rate out of range) is one error line and exit 2, before anything is computed or written.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from models.cli_support import out_entry, positive_int, print_json
from models.datasets import ImageData, load_dataset
from models.modify import (
    DEFAULT_CALIBRATION,
    DEFAULT_LR,
    check_ftal,
    check_rate,
    ftal_entry,
    prune_entry,
    quantize_entry,
    resolve_parent,
)
from models.repository import ModelConfig, load_model
from models.training import seed_everything

EXAMPLES = """examples:
  python -m models modify int8  --from zoo/target --out zoo/pirate-int8 --calibration 512
  python -m models modify prune --from zoo/target --rate 0.5 --out zoo/pirate-prune-50
  python -m models modify ftal  --from zoo/target --epochs 2 --fraction 0.05 --lr 0.01 \\
      --seed 0 --out zoo/pirate-ftal"""


def _common(p: argparse.ArgumentParser, seed: bool = True) -> None:
    p.add_argument("--from", dest="parent", required=True, metavar="REPO/MODEL",
                   help="parent entry (needs model.safetensors)")
    p.add_argument("--out", required=True, type=out_entry, metavar="REPO/NAME",
                   help="new entry to write (replaced whole if it exists)")
    p.add_argument("--data-root", default=None,
                   help="folder holding the parent's dataset (default: its usual places)")
    p.add_argument("--test-samples", type=positive_int, default=None, metavar="N",
                   help="evaluate on the first N test images only (default: all)")
    if seed:
        p.add_argument("--seed", type=int, default=0)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("modify", help="derive a pirate variant: int8, prune, ftal",
                              description="Derive a baseline pirate variant of a repository entry.",
                              epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = p.add_subparsers(dest="modification", required=True, metavar="MODIFICATION")

    q = kinds.add_parser("int8", help="static int8 post-training quantisation (ONNX Runtime)",
                         epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(q)
    q.add_argument("--calibration", type=positive_int, default=DEFAULT_CALIBRATION,
                   help="number of training images for calibration (default %(default)s)")
    q.add_argument("--activations", choices=("uint8", "int8"), default="uint8",
                   help="activation type (weights are always int8 per channel)")
    q.set_defaults(run=run_int8)

    r = kinds.add_parser("prune", help="global L1 magnitude pruning, made permanent",
                         epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(r, seed=False)
    r.add_argument("--rate", type=float, required=True,
                   help="fraction of conv+linear weights to zero, in [0.1, 0.9]")
    r.set_defaults(run=run_prune)

    f = kinds.add_parser("ftal", help="fine-tune all layers on a seeded data fraction",
                         epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(f)
    f.add_argument("--epochs", type=positive_int, default=2)
    f.add_argument("--fraction", type=float, default=0.05,
                   help="fraction of the training set the pirate holds, in (0, 1]")
    f.add_argument("--lr", type=float, default=DEFAULT_LR)
    f.add_argument("--batch-size", type=positive_int, default=128)
    f.set_defaults(run=run_ftal)


def _prepare(args: argparse.Namespace) -> ModelConfig:
    """Every check that can fail on user input, before data is loaded or anything written."""
    config, _ = resolve_parent(args.parent, args.out)
    load_model(args.parent)  # refuses missing, pickled or mismatched weights
    return config


def _data(config: ModelConfig, args: argparse.Namespace, split: str) -> ImageData:
    data = load_dataset(config.dataset, split, args.data_root)
    return data.take(args.test_samples) if split == "test" and args.test_samples else data


def _summary(args: argparse.Namespace, config: ModelConfig, seconds: float,
             keys: tuple[str, ...]) -> dict[str, Any]:
    metrics = config.metrics
    return {"out": str(args.out), "parent": str(args.parent),
            "modification": config.lineage.modification, "parameters": config.lineage.parameters,
            "parent_test_top1": metrics.get("parent_test_top1"),
            "test_top1": metrics.get("test_top1"),
            **{k: metrics[k] for k in keys if k in metrics},
            "test_samples": metrics.get("test_samples"), "seconds": round(seconds, 1)}


def run_int8(args: argparse.Namespace) -> int:
    config = _prepare(args)
    train, test = _data(config, args, "train"), _data(config, args, "test")
    started = time.perf_counter()
    result = quantize_entry(args.parent, args.out, train, test, calibration=args.calibration,
                            seed=args.seed, activation_type=args.activations)
    print_json(_summary(args, result, time.perf_counter() - started, (
        "agreement_with_parent", "onnx_bytes", "parent_onnx_bytes", "quantize_linear",
        "dequantize_linear", "int8_conv_kernels", "int8_kernels", "float_conv_matmul_kernels")))
    return 0


def run_prune(args: argparse.Namespace) -> int:
    check_rate(args.rate)
    config = _prepare(args)
    test = _data(config, args, "test")
    started = time.perf_counter()
    result = prune_entry(args.parent, args.out, args.rate, test)
    print_json(_summary(args, result, time.perf_counter() - started,
                        ("agreement_with_parent", "sparsity")))
    return 0


def run_ftal(args: argparse.Namespace) -> int:
    check_ftal(args.epochs, args.fraction, args.lr, args.batch_size)
    config = _prepare(args)
    train, test = _data(config, args, "train"), _data(config, args, "test")
    seed_everything(args.seed)
    started = time.perf_counter()
    result = ftal_entry(args.parent, args.out, train, test, epochs=args.epochs,
                        fraction=args.fraction, lr=args.lr, seed=args.seed,
                        batch_size=args.batch_size)
    print_json(_summary(args, result, time.perf_counter() - started,
                        ("agreement_with_parent", "weight_relative_change")))
    return 0
