"""The shape every ``python -m <package>`` CLI shares: auto-discovered command modules, one-line
user errors, exit status 2 for bad input."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from models.errors import UserError


def build_parser(prog: str, description: str, commands: ModuleType) -> argparse.ArgumentParser:
    """A parser with one sub-command per module in ``commands`` that defines ``register``."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for found in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{found.name}")
        if hasattr(module, "register"):
            module.register(subparsers)
    return parser


def run_cli(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse and dispatch to ``args.run``; a ``UserError`` becomes one line and exit 2."""
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
