"""``python -m models data``: where each dataset is found (or why it is not)."""

from __future__ import annotations

import argparse

from models.cli_support import Example, add_command

EXAMPLES = [Example("python -m models data --check fashion-mnist", cheap=True),
            Example("CSRP_DATA_DIR=~/data/fmnist python -m models data --check fashion-mnist",
                    note="a folder holding the four *-ubyte.gz files")]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "data", "where each dataset is found (or why it is not)",
                    "Look for a dataset where the loaders look (--data-root, CSRP_DATA_DIR, "
                    "./data, Debian's package) and print the folder it loads from, or one line "
                    "saying what to do.", EXAMPLES)
    p.add_argument("--check", default="fashion-mnist", metavar="NAME",
                   help="the dataset to look for (default fashion-mnist)")
    p.add_argument("--data-root", default=None, metavar="DIR", help="a folder to look in")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from models.datasets import DATASETS, load_dataset

    DATASETS.check(args.check)
    data = load_dataset(args.check, "test", args.data_root)
    print(f"{args.check}: {len(data)} test images from {data.source}")
    return 0
