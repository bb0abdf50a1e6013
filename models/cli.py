"""The ground floor both sides stand on: train, modify, adapt, evaluate, export, info, zoo, data.

Each command lives in ``models/commands/<name>.py`` exposing ``register(subparsers)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import models.commands
from models.cli_support import build_parser, run_cli


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser("python -m models", __doc__.splitlines()[0], models.commands)
    return run_cli(parser, argv)
