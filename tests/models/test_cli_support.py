"""The shared CLI helpers (``models.cli_support``): transform options become checked specs."""

from __future__ import annotations

import argparse

import pytest

from models.cli_support import add_transform_arguments, transform_from_args, transform_spec
from models.errors import UserError

CSRP_SPEC = {"name": "csrp", "sigma": 1.16, "p": 3}


def test_transform_spec_normalises_and_validates():
    assert transform_spec("csrp", sigma=1.16, p=3) == CSRP_SPEC
    assert transform_spec("rdg") == {"name": "rdg", "distort_limit": 0.25, "num_cells": 10}
    assert transform_spec("none") is None and transform_spec(None) is None
    with pytest.raises(UserError, match=r"sigma must be a number in \(1, 4\]"):
        transform_spec("csrp", sigma=1.0, p=3)
    with pytest.raises(UserError, match=r"p must be an integer in 0\.\.1024"):
        transform_spec("csrp", sigma=1.2, p=-1)
    with pytest.raises(UserError, match="unknown transform 'blur'"):
        transform_spec("blur")


def test_inline_options_equal_flags():
    assert transform_spec("csrp(sigma=1.16, p=3)") == CSRP_SPEC
    assert transform_spec("rdg(num_cells=4)") == {"name": "rdg", "distort_limit": 0.25,
                                                   "num_cells": 4}
    with pytest.raises(UserError, match="given both inline and as a flag"):
        transform_spec("csrp(sigma=1.16, p=3)", p=4)
    with pytest.raises(UserError, match="not key=value"):
        transform_spec("csrp(sigma)")
    with pytest.raises(UserError, match="needs a transform family"):
        transform_spec("csrp(sigma=1.1..1.3, p=3)")


@pytest.mark.parametrize(("name", "options", "message"), [
    ("csrp", {"sigma": 1.2}, r"--transform csrp needs --p \(--p: zero padding, integer >= 0\)"),
    ("csrp", {}, "--transform csrp needs --sigma and --p"),
    ("rdg", {"sigma": 1.2}, "--sigma/--p belong to --transform csrp, not rdg"),
    (None, {"distort_limit": 0.1}, "--distort-limit/--num-cells belong to --transform rdg$"),
    ("none", {"p": 3}, "--sigma/--p belong to --transform csrp$"),
])
def test_transform_spec_errors_name_the_flags(name, options, message):
    with pytest.raises(UserError, match=message):
        transform_spec(name, **options)


def test_parser_has_one_flag_per_option():
    parser = argparse.ArgumentParser()
    add_transform_arguments(parser, allow_none=True)
    args = parser.parse_args(["--transform", "rdg", "--distort-limit", "0.3"])
    assert transform_from_args(args).spec() == {"name": "rdg", "distort_limit": 0.3,
                                                "num_cells": 10}
    args = parser.parse_args(["--transform", "csrp", "--sigma", "1.23", "--p", "6"])
    assert transform_from_args(args).spec() == {"name": "csrp", "sigma": 1.23, "p": 6}
    with pytest.raises(UserError, match="bad transform"):  # checked against the input size
        transform_from_args(parser.parse_args(["--transform", "csrp", "--sigma", "1.01",
                                               "--p", "12"]), [1, 8, 8])
