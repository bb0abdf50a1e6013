"""``python -m models train``: train an architecture from scratch into a repository entry."""

from __future__ import annotations

import argparse

from models.architectures import list_models
from models.cli_support import fraction, out_entry, positive_float, positive_int, print_json
from models.datasets import dataset_info, list_datasets, load_dataset
from models.entries import train_to_entry
from models.training import TrainSettings

EXAMPLES = """examples:
  python -m models train --arch resnet20 --dataset fashion-mnist --epochs 2 \\
      --seed 0 --out zoo/target
  python -m models train --arch vgg16 --dataset cifar10 --data-root ~/data/cifar10 --out repo/vgg"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a model from scratch", epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", required=True, choices=list_models())
    p.add_argument("--dataset", default="fashion-mnist", choices=list_datasets())
    p.add_argument("--data-root", default=None, help="folder holding the dataset")
    p.add_argument("--epochs", type=positive_int, default=2)
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--lr", type=positive_float, default=0.1,
                   help="peak learning rate (default 0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-fraction", type=fraction, default=1.0,
                   help="train on a seeded subset (quick experiments)")
    p.add_argument("--out", required=True, type=out_entry, help="REPO/NAME to write")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    info = dataset_info(args.dataset)
    train = load_dataset(args.dataset, "train", args.data_root)
    if args.train_fraction < 1.0:
        train = train.subset(args.train_fraction, args.seed)
    test = load_dataset(args.dataset, "test", args.data_root)
    settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                             seed=args.seed)
    config = train_to_entry(args.out, args.arch, info, train, test, settings,
                            extra_parameters={"train_fraction": args.train_fraction})
    print_json({"out": str(args.out), **config.metrics})
    return 0
