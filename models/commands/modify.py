"""``python -m models modify {int8,prune,ftal,distill,detector}``: pirate variants of an entry.

Each writes a new repository entry (atomically) whose lineage names the parent; the dataset and
labels come from the parent's config. Bad input (unknown parent, pickled weights, --out equal to
--from, rate out of range) is one error line and exit 2, before anything is computed or written.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from models.cli_support import (
    Example,
    HelpFormatter,
    alias,
    cli_transform,
    examples_epilog,
    fraction,
    out_entry,
    positive_float,
    positive_int,
    print_json,
)

EXAMPLES = [
    Example("python -m models modify prune --from zoo/target --rate 0.3 --samples 500 "
            "--out build/examples/repo/prune-0.3", cheap=True),
    Example("python -m models modify int8 --from zoo/target --calibration-images 256 "
            "--samples 500 --out build/examples/repo/int8", cheap=True),
    Example("python -m models modify ftal --from zoo/target --epochs 4 --fraction 0.05 "
            "--lr 0.01 --seed 7 --out build/examples/repo/ftal"),
    Example("python -m models modify distill --from zoo/target --arch resnet20 --epochs 2 "
            "--seed 501 --out build/examples/repo/kd", note="a label-only student"),
    Example("python -m models modify detector --from zoo/target --fpr 0.01 --samples 500 "
            "--out build/examples/repo/detector", cheap=True,
            note="answers queries unlike clean data with the runner-up label"),
]
DEFAULT_CALIBRATION = 512
DEFAULT_LR = 0.01


def _common(p: argparse.ArgumentParser, seed: bool = True) -> None:
    p.add_argument("--from", dest="parent", required=True, metavar="REPO/MODEL",
                   help="parent entry (needs model.safetensors)")
    p.add_argument("--out", required=True, type=out_entry, metavar="REPO/NAME",
                   help="new entry to write (replaced whole if it exists)")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="folder holding the parent's dataset (default: its usual places)")
    p.add_argument("--samples", type=positive_int, default=None, metavar="N",
                   help="evaluate on the first N test images only (default: all)")
    alias(p, "--test-samples", dest="samples", type=positive_int)
    if seed:
        p.add_argument("--seed", type=int, default=0, help="data subset, order and draws")


def register(subparsers: argparse._SubParsersAction) -> None:
    epilog = examples_epilog(EXAMPLES)
    p = subparsers.add_parser("modify",
                              help="derive a pirate variant: int8, prune, ftal, distill, detector",
                              description="Derive a pirate variant of a repository entry.",
                              epilog=epilog,
                              formatter_class=HelpFormatter)
    kinds = p.add_subparsers(dest="modification", required=True, metavar="MODIFICATION")

    def kind(name: str, summary: str) -> argparse.ArgumentParser:
        return kinds.add_parser(name, help=summary, description=summary, epilog=epilog,
                                formatter_class=HelpFormatter)

    q = kind("int8", "static int8 post-training quantisation (ONNX Runtime QDQ)")
    _common(q)
    q.add_argument("--calibration-images", type=positive_int, default=DEFAULT_CALIBRATION,
                   metavar="N", help=f"training images for calibration (default "
                                     f"{DEFAULT_CALIBRATION})")
    alias(q, "--calibration", dest="calibration_images", type=positive_int)
    q.add_argument("--activations", choices=("uint8", "int8"), default="uint8",
                   help="activation type (weights are always int8 per channel; default uint8)")
    q.set_defaults(run=run_int8)

    r = kind("prune", "global L1 magnitude pruning, made permanent")
    _common(r, seed=False)
    r.add_argument("--rate", type=float, required=True,
                   help="fraction of conv+linear weights to zero, in [0.1, 0.9]")
    r.set_defaults(run=run_prune)

    f = kind("ftal", "fine-tune all layers on a seeded share of the training data")
    _common(f)
    f.add_argument("--epochs", type=positive_int, default=2, help="epochs (default 2)")
    f.add_argument("--fraction", type=fraction, default=0.05,
                   help="share of the training set the pirate holds, in (0, 1] (default 0.05)")
    f.add_argument("--lr", type=positive_float, default=DEFAULT_LR,
                   help=f"peak learning rate (default {DEFAULT_LR})")
    f.add_argument("--batch-size", type=positive_int, default=128, help="batch (default 128)")
    f.set_defaults(run=run_ftal)

    d = kind("distill", "a fresh student trained on the parent's labels only (no true labels)")
    _common(d)
    d.add_argument("--arch", default=None, metavar="NAME",
                   help="the student's architecture (default: the parent's)")
    d.add_argument("--epochs", type=positive_int, default=2, help="epochs (default 2)")
    d.add_argument("--fraction", type=fraction, default=1.0,
                   help="share of the training images labelled by the parent (default 1)")
    d.add_argument("--lr", type=positive_float, default=0.1,
                   help="peak learning rate (default 0.1)")
    d.set_defaults(run=run_distill)

    g = kind("detector", "the same weights behind a query detector fitted on clean data only")
    _common(g)
    g.add_argument("--fpr", type=fraction, default=0.01, metavar="RATE",
                   help="clean false-positive rate the threshold guarantees, in (0, 1) "
                   "(default 0.01)")
    g.add_argument("--fraction", type=fraction, default=0.05,
                   help="share of the training set the pirate holds, in (0, 1] (default 0.05)")
    g.add_argument("--transform", default=None, metavar="SPEC",
                   help="the front the detector sits behind, e.g. 'csrp(sigma=1.23, p=6)' "
                   "(default: the parent's preprocessing)")
    g.add_argument("--repeats", type=positive_int, default=3,
                   help="front draws for the accuracy metrics (default 3)")
    g.set_defaults(run=run_detector)


def _prepare(args: argparse.Namespace, weights: bool = True) -> Any:
    """Every check that can fail on user input, before data is loaded or anything written."""
    from models.modify import resolve_parent
    from models.repository import load_model

    config, _ = resolve_parent(args.parent, args.out)
    if weights:
        load_model(args.parent)  # refuses missing, pickled or mismatched weights
    return config


def _data(config: Any, args: argparse.Namespace, split: str) -> Any:
    from models.datasets import load_dataset

    data = load_dataset(config.dataset, split, args.data_root)
    return data.take(args.samples) if split == "test" and args.samples else data


def _summary(args: argparse.Namespace, config: Any, seconds: float,
             keys: tuple[str, ...]) -> dict[str, Any]:
    metrics = config.metrics
    return {"out": str(args.out), "parent": str(args.parent),
            "modification": config.lineage.modification, "parameters": config.lineage.parameters,
            "parent_test_top1": metrics.get("parent_test_top1"),
            "test_top1": metrics.get("test_top1"),
            **{k: metrics[k] for k in keys if k in metrics},
            "test_samples": metrics.get("test_samples"), "seconds": round(seconds, 1)}


def run_detector(args: argparse.Namespace) -> int:
    from models.errors import UserError
    from models.modify import detector_entry

    if args.fpr >= 1:
        raise UserError(f"--fpr must be in (0, 1); got {args.fpr}")
    config = _prepare(args, weights=False)
    transform = cli_transform(args.transform)
    if transform is not None:
        try:
            transform.check_fits(config.input_shape)
        except ValueError as error:
            raise UserError(f"bad transform: {error}") from None
    spec = None if transform is None else transform.spec()
    train, test = _data(config, args, "train"), _data(config, args, "test")
    started = time.perf_counter()
    result = detector_entry(args.parent, args.out, train, test, fpr=args.fpr,
                            fraction=args.fraction, transform=spec, seed=args.seed,
                            repeats=args.repeats)
    print_json(_summary(args, result, time.perf_counter() - started, (
        "transform_top1", "served_top1", "clean_flagged")))
    return 0


def run_int8(args: argparse.Namespace) -> int:
    from models.modify import quantize_entry

    config = _prepare(args)
    train, test = _data(config, args, "train"), _data(config, args, "test")
    started = time.perf_counter()
    result = quantize_entry(args.parent, args.out, train, test,
                            calibration=args.calibration_images,
                            seed=args.seed, activation_type=args.activations)
    print_json(_summary(args, result, time.perf_counter() - started, (
        "agreement_with_parent", "onnx_bytes", "parent_onnx_bytes", "quantize_linear",
        "dequantize_linear", "int8_conv_kernels", "int8_kernels", "float_conv_matmul_kernels")))
    return 0


def run_prune(args: argparse.Namespace) -> int:
    from models.modify import check_rate, prune_entry

    check_rate(args.rate)
    config = _prepare(args)
    test = _data(config, args, "test")
    started = time.perf_counter()
    result = prune_entry(args.parent, args.out, args.rate, test)
    print_json(_summary(args, result, time.perf_counter() - started,
                        ("agreement_with_parent", "sparsity")))
    return 0


def run_ftal(args: argparse.Namespace) -> int:
    from models.modify import check_ftal, ftal_entry
    from models.training import seed_everything

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


def run_distill(args: argparse.Namespace) -> int:
    from models.architectures import ARCHITECTURES
    from models.modify import distill_entry

    if args.arch is not None:
        ARCHITECTURES.check(args.arch)
    config = _prepare(args, weights=False)
    train, test = _data(config, args, "train"), _data(config, args, "test")
    started = time.perf_counter()
    result = distill_entry(args.parent, args.out, train, test, arch=args.arch,
                           epochs=args.epochs, fraction=args.fraction, lr=args.lr,
                           seed=args.seed)
    print_json(_summary(args, result, time.perf_counter() - started,
                        ("agreement_with_parent",)))
    return 0
