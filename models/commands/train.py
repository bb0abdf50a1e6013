"""``python -m models train``: train an architecture from scratch into a repository entry."""

from __future__ import annotations

import argparse

from models.cli_support import (
    Example,
    add_command,
    fraction,
    out_entry,
    positive_float,
    positive_int,
    print_json,
)

EXAMPLES = [
    Example("python -m models train --arch tinycnn --train-fraction 0.02 --epochs 1 "
            "--out build/examples/repo/tiny", cheap=True),
    Example("python -m models train --arch resnet20 --epochs 2 --seed 0 "
            "--out build/examples/repo/target", note="the zoo's recipe, ~4 min on 2 cores"),
    Example("python -m models train --arch vgg16 --dataset cifar10 --data-root ~/data/cifar10 "
            "--out build/examples/repo/vgg"),
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "train", "train a model from scratch",
                    "Train an architecture from scratch (SGD + one-cycle, random crop + flip, "
                    "deterministic from the seed) and write a repository entry: weights, ONNX "
                    "(parity-checked) and test top-1/top-5.", EXAMPLES)
    p.add_argument("--arch", required=True, metavar="NAME",
                   help="architecture: resnet20, resnet56, vgg16, vgg16_025, mobilenet, "
                        "mobilenet_025, tinycnn (or any registered one)")
    p.add_argument("--dataset", default="fashion-mnist", metavar="NAME",
                   help="fashion-mnist (default), cifar10, cifar100 or tinyimagenet")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="folder holding the dataset (default: CSRP_DATA_DIR, then the usual "
                        "places)")
    p.add_argument("--epochs", type=positive_int, default=2, help="epochs (default 2)")
    p.add_argument("--batch-size", type=positive_int, default=128, help="batch (default 128)")
    p.add_argument("--lr", type=positive_float, default=0.1,
                   help="peak learning rate (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="weights, data order and augmentation")
    p.add_argument("--train-fraction", type=fraction, default=1.0,
                   help="train on a seeded share of the training split (default 1)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument("--out", required=True, type=out_entry, metavar="REPO/NAME",
                   help="the entry to write")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from models.architectures import ARCHITECTURES
    from models.datasets import DATASETS, dataset_info, load_dataset
    from models.entries import set_threads, train_to_entry
    from models.training import TrainSettings

    ARCHITECTURES.check(args.arch)
    DATASETS.check(args.dataset)
    set_threads(args.threads)
    info = dataset_info(args.dataset)
    train = load_dataset(args.dataset, "train", args.data_root)
    if args.train_fraction < 1.0:
        train = train.subset(args.train_fraction, args.seed)
    test = load_dataset(args.dataset, "test", args.data_root)
    settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                             seed=args.seed)
    config = train_to_entry(args.out, args.arch, info, train, test, settings,
                            extra_parameters={"train_fraction": args.train_fraction,
                                              "data_source": train.source})
    print_json({"out": str(args.out), **config.metrics})
    return 0
