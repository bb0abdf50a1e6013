"""Argument types shared by the models and verifier_client command lines."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def checked_number(value: str, kind: type[int] | type[float], ok: Callable[[float], bool],
            rule: str) -> Any:
    """Parse ``value`` as ``kind`` and check it; argparse shows the message as a usage error."""
    try:
        number = kind(value)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"not {what}: {value!r}") from None
    if not ok(number):
        raise argparse.ArgumentTypeError(f"must be {rule}, got {number}")
    return number


def fraction(value: str) -> float:
    return checked_number(value, float, lambda v: 0.0 < v <= 1.0, "in (0, 1]")


def positive_int(value: str) -> int:
    return checked_number(value, int, lambda v: v >= 1, ">= 1")


def non_negative_int(value: str) -> int:
    return checked_number(value, int, lambda v: v >= 0, ">= 0")


def positive_float(value: str) -> float:
    return checked_number(value, float, lambda v: v > 0, "> 0")


def print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2))
