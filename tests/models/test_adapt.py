"""The data-limited pirate (``models.adapt``, ``python -m models adapt``): entries carry the
transform as preprocessing and full lineage, adaptation helps under the transform, ``--epochs 0``
is the data-free pirate, and bad input is one error line with nothing written."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models.adapt import (
    DrawAccuracy,
    accuracy_under,
    adapt_entry,
    batch_transform,
)
from models.cli import main
from models.errors import UserError
from models.repository import ONNX_FILE, WEIGHTS_FILE, load_config, load_model
from models.runtime import load_predictor
from models.transforms import CSRP, RDG, build_transform

ROOT = Path(__file__).resolve().parents[2]
CSRP_SPEC = {"name": "csrp", "sigma": 1.16, "p": 3}


@pytest.fixture
def repo(tmp_path: Path, tiny_repo: Path) -> Path:
    """A private copy of the tiny target (tinycnn, ~75% on Fashion-MNIST)."""
    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo / "target", repo / "target")
    return repo


def _state(path: Path) -> dict[str, torch.Tensor]:
    return load_model(path)[0].state_dict()


# --- library -------------------------------------------------------------------------------

def test_batch_transform_is_eager_no_grad_and_seeded():
    fn = batch_transform(CSRP_SPEC)
    images = torch.rand(6, 1, 28, 28, requires_grad=True)
    first = fn(images, torch.Generator().manual_seed(1))
    again = fn(images, torch.Generator().manual_seed(1))
    assert torch.equal(first, again) and not first.requires_grad
    assert batch_transform(None) is None
    module = build_transform(CSRP_SPEC)
    batch_transform(module)
    assert module.backend == "eager"  # no torch.compile warm-up inside training loops


def test_accuracy_under_pairs_draws_and_reports_spread(tiny_repo, fmnist_test):
    model, _ = load_model(tiny_repo / "target")
    test = fmnist_test.take(300)
    under = accuracy_under(model, test, {"name": "csrp", "sigma": 1.23, "p": 5}, repeats=3,
                           seed=4)
    assert isinstance(under, DrawAccuracy) and under.repeats == 3 and under.seeds == [4, 5, 6]
    assert under.top1_std > 0 and min(under.top1s) <= under.top1 <= max(under.top1s)
    assert accuracy_under(model, test, {"name": "csrp", "sigma": 1.23, "p": 5}, repeats=3,
                          seed=4) == under
    clean = accuracy_under(model, test, None, repeats=3)
    assert clean.repeats == 1 and clean.top1_std == 0
    summary = under.summary("transform_")
    assert set(summary) >= {"transform_top1", "transform_top1_std", "transform_top5",
                            "transform_repeats"}


def test_adapt_csrp_writes_entry_with_preprocessing_and_lineage(repo, fmnist_train, fmnist_test):
    test = fmnist_test.take(300)
    config = adapt_entry(repo / "target", repo / "pirate", CSRP_SPEC, fmnist_train, test,
                         epochs=1, fraction=0.125, lr=0.01, seed=7, repeats=3,
                         show_progress=False)
    loaded = load_config(repo / "pirate")
    assert loaded.preprocessing == CSRP_SPEC == config.preprocessing
    assert isinstance(build_transform(loaded.preprocessing), CSRP)
    lineage = loaded.lineage
    assert (lineage.parent, lineage.modification, lineage.seed) == ("target", "adapt-csrp", 7)
    params = lineage.parameters
    assert (params["transform"], params["sigma"], params["p"]) == ("csrp", 1.16, 3)
    assert (params["epochs"], params["fraction"], params["train_samples"]) == (1, 0.125, 600)
    assert params["lr"] == 0.01 and params["layers"] == "all"
    metrics = loaded.metrics
    for prefix in ("transform_", "parent_transform_"):
        assert 0.0 < metrics[f"{prefix}top1"] <= 1.0
        assert metrics[f"{prefix}top1_std"] >= 0 and metrics[f"{prefix}repeats"] == 3
    assert 0.0 < metrics["test_top1"] <= 1.0 and 0.0 < metrics["parent_test_top1"] <= 1.0
    assert metrics["test_samples"] == 300 and metrics["weight_relative_change"] > 0
    old, new = _state(repo / "target"), _state(repo / "pirate")
    assert any(not torch.equal(old[k], new[k]) for k in old)
    assert (repo / "pirate" / ONNX_FILE).is_file()
    assert load_predictor(repo / "pirate").predict(test.floats(slice(0, 4))).shape == (4,)


def test_adapting_recovers_accuracy_under_a_strong_csrp(repo, fmnist_train, fmnist_test):
    """A CSRP strong enough to hurt the parent (content shifted up to 8 px, scaled to 0.73):
    a couple of epochs on the transform's own data bring accuracy under it back up."""
    strong = {"name": "csrp", "sigma": 1.1, "p": 8}
    config = adapt_entry(repo / "target", repo / "strong", strong, fmnist_train,
                         fmnist_test.take(500), epochs=2, fraction=0.25, lr=0.05, seed=0,
                         repeats=2, show_progress=False)
    metrics = config.metrics
    assert metrics["parent_transform_top1"] < metrics["parent_test_top1"] - 0.05
    assert metrics["transform_top1"] > metrics["parent_transform_top1"] + 0.03


def test_epochs_zero_is_the_data_free_pirate(repo, fmnist_test):
    config = adapt_entry(repo / "target", repo / "free", CSRP_SPEC, None, fmnist_test.take(300),
                         epochs=0, seed=3, repeats=2)
    for name in (WEIGHTS_FILE, ONNX_FILE):
        assert (repo / "free" / name).read_bytes() == (repo / "target" / name).read_bytes()
    loaded = load_config(repo / "free")
    assert loaded.preprocessing == CSRP_SPEC
    lineage = loaded.lineage
    assert (lineage.parent, lineage.modification, lineage.seed) == ("target", "csrp-data-free", 3)
    assert (lineage.parameters["epochs"], lineage.parameters["train_samples"]) == (0, 0)
    m = config.metrics
    assert m["transform_top1"] == m["parent_transform_top1"] and m["transform_repeats"] == 2
    assert m["test_top1"] == m["parent_test_top1"] and m["agreement_with_parent"] == 1.0


def test_data_free_works_from_an_onnx_only_parent(repo, fmnist_train, fmnist_test):
    (repo / "target" / WEIGHTS_FILE).unlink()
    adapt_entry(repo / "target", repo / "free-rdg", {"name": "rdg"}, None, fmnist_test.take(100),
                epochs=0, repeats=1)
    assert sorted(p.name for p in (repo / "free-rdg").iterdir()) == ["config.json", ONNX_FILE]
    assert load_config(repo / "free-rdg").lineage.modification == "rdg-data-free"
    with pytest.raises(UserError, match=WEIGHTS_FILE):
        adapt_entry(repo / "target", repo / "ft", CSRP_SPEC, fmnist_train, fmnist_test.take(10),
                    epochs=1)


# --- command line --------------------------------------------------------------------------

def test_adapt_rdg_cli(repo, capsys):
    code = main(["adapt", "--from", str(repo / "target"), "--out", str(repo / "pirate-rdg"),
                 "--transform", "rdg", "--distort-limit", "0.3", "--num-cells", "7",
                 "--fraction", "0.01", "--epochs", "1", "--seed", "2", "--repeats", "2",
                 "--test-samples", "200"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["modification"] == "adapt-rdg"
    spec = {"name": "rdg", "distort_limit": 0.3, "num_cells": 7}
    assert summary["preprocessing"] == spec and summary["transform_repeats"] == 2
    loaded = load_config(repo / "pirate-rdg")
    assert loaded.preprocessing == spec and isinstance(build_transform(spec), RDG)
    assert loaded.lineage.parameters["train_samples"] == 600
    assert (loaded.lineage.parent, loaded.lineage.seed) == ("target", 2)


def test_adapt_cli_end_to_end_subprocess(repo):
    out = repo / "pirate-csrp"
    result = subprocess.run(
        [sys.executable, "-m", "models", "adapt", "--from", str(repo / "target"), "--out",
         str(out), "--transform", "csrp", "--sigma", "1.16", "--p", "3", "--fraction", "0.01",
         "--epochs", "1", "--seed", "5", "--repeats", "2", "--test-samples", "200",
         "--threads", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["modification"] == "adapt-csrp" and summary["preprocessing"] == CSRP_SPEC
    assert summary["parameters"]["fraction"] == 0.01 and summary["seed"] == 5
    for key in ("parent_test_top1", "test_top1", "parent_transform_top1", "transform_top1"):
        assert 0.0 < summary[key] <= 1.0
    assert load_config(out).preprocessing == CSRP_SPEC


BASE = ["--from", "{repo}/target", "--out", "{repo}/x"]
CSRP_ARGS = ["--transform", "csrp", "--sigma", "1.16", "--p", "3"]


SIGMA_RANGE, P_RANGE = r"sigma must be a number in \(1, 4\]", r"p must be an integer in 0\.\.1024"


@pytest.mark.parametrize(("argv", "message"), [
    ([*BASE, "--transform", "csrp", "--sigma", "1.0", "--p", "3"], SIGMA_RANGE),
    ([*BASE, "--transform", "csrp", "--sigma", "0.5", "--p", "3"], SIGMA_RANGE),
    ([*BASE, "--transform", "csrp", "--sigma", "1.16", "--p", "-1"], P_RANGE),
    ([*BASE, "--transform", "csrp", "--sigma", "1.16", "--p", "40"], "makes the image vanish"),
    ([*BASE, "--transform", "csrp", "--sigma", "1.16"], r"needs --p \(--p: zero padding"),
    ([*BASE, *CSRP_ARGS, "--fraction", "0"], r"--fraction .* must be in \(0, 1\], got 0.0"),
    ([*BASE, *CSRP_ARGS, "--fraction", "1.5"], r"--fraction .* must be in \(0, 1\], got 1.5"),
    ([*BASE, *CSRP_ARGS, "--fraction", "-0.1"], r"--fraction .* must be in \(0, 1\]"),
    ([*BASE, *CSRP_ARGS, "--epochs", "-1"], r"--epochs must be an integer >= 0"),
    ([*BASE, "--transform", "blur"], "unknown transform 'blur'"),
    ([*BASE, "--transform", "none"], "adapt needs --transform csrp or rdg"),
    ([*BASE, "--transform", "rdg", "--sigma", "1.2"], "belong to --transform csrp"),
    ([*BASE, "--transform", "rdg", "--distort-limit", "1.5"], r"distort_limit must be .*\[0, 1\)"),
    (["--from", "{repo}/nope", "--out", "{repo}/x", *CSRP_ARGS], "missing"),
    (["--from", "{repo}/target", "--out", "{repo}/target", *CSRP_ARGS], "parent entry itself"),
])
def test_adapt_cli_bad_input(repo, capsys, argv, message):
    before = sorted(p.name for p in repo.iterdir())
    target_files = {p.name: p.read_bytes() for p in (repo / "target").iterdir()}
    code = main(["adapt", *(a.format(repo=repo) for a in argv)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert re.search(message, err), err
    assert sorted(p.name for p in repo.iterdir()) == before  # nothing written, no temp folder
    assert {p.name: p.read_bytes() for p in (repo / "target").iterdir()} == target_files
