"""The owner's side: fingerprints, calibration, remote verification, studies and the report.

Each command lives in ``verifier_client/commands/<name>.py`` exposing ``register(subparsers)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import verifier_client.commands
from models.cli_support import build_parser, run_cli


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser("python -m verifier_client", __doc__.splitlines()[0],
                          verifier_client.commands)
    return run_cli(parser, argv)
