"""Argument helpers shared by the ``python -m models`` commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from models.errors import UserError
from models.repository import CONFIG_FILE, validate_model_name


def out_entry(value: str) -> Path:
    """``REPO/NAME`` for a new repository entry; NAME must be a valid model name."""
    path = Path(value)
    try:
        validate_model_name(path.name)
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return path


def existing_entry(value: str) -> Path:
    """``REPO/NAME`` of an existing entry (a folder with config.json)."""
    path = Path(value)
    if not (path / CONFIG_FILE).is_file():
        raise argparse.ArgumentTypeError(f"{value}: not a model repository entry (no config.json)")
    return path


def fraction(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 0.0 < number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {number}")
    return number


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {number}")
    return number


def non_negative_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {number}")
    return number


def positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {number}")
    return number


def print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2))
