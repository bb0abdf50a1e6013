"""``python -m models evaluate``: accuracy under a transform as mean and spread over draws, the
entry's own preprocessing by default, any backend (ONNX-only int8 entries included)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from models.atomic import write_json
from models.cli import main
from models.modify import quantize_entry
from models.repository import CONFIG_FILE, WEIGHTS_FILE, load_config

ROOT = Path(__file__).resolve().parents[2]
CSRP_SPEC = {"name": "csrp", "sigma": 1.23, "p": 5}
DRAW_FIELDS = {"top1", "top1_std", "top1_min", "top1_max", "top5", "top5_std", "top5_min",
               "top5_max", "repeats", "clean_top1", "clean_top5", "top1_drop", "draws",
               "transform", "transform_source", "backend", "samples", "model", "dataset", "seed"}


@pytest.fixture
def repo(tmp_path: Path, tiny_repo: Path) -> Path:
    """The tiny target, plus ``pirate``: the same files with CSRP as its preprocessing."""
    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo / "target", repo / "target")
    shutil.copytree(tiny_repo / "target", repo / "pirate")
    config = load_config(repo / "pirate").model_copy(
        update={"name": "pirate", "preprocessing": CSRP_SPEC})
    write_json(repo / "pirate" / CONFIG_FILE, config.model_dump(mode="json"))
    return repo


def _evaluate(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["evaluate", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_evaluate_csrp_subprocess_reports_mean_and_spread(repo, tmp_path):
    out = tmp_path / "reports" / "eval.json"
    result = subprocess.run(
        [sys.executable, "-m", "models", "evaluate", "--model", str(repo / "target"),
         "--transform", "csrp", "--sigma", "1.23", "--p", "5", "--repeats", "3",
         "--samples", "400", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert json.loads(out.read_text()) == report
    assert set(report) >= DRAW_FIELDS
    assert report["transform"] == CSRP_SPEC and report["transform_source"] == "option"
    assert report["samples"] == 400 and report["repeats"] == 3 and report["backend"] == "onnx"
    assert [d["seed"] for d in report["draws"]] == [0, 1, 2]
    top1s = [d["top1"] for d in report["draws"]]
    assert report["top1_std"] > 0 and len(set(top1s)) > 1  # random draws really differ
    assert report["top1_min"] == min(top1s) and report["top1_max"] == max(top1s)
    assert report["top1_min"] <= report["top1"] <= report["top1_max"]
    assert report["top1"] <= report["top5"] <= 1.0
    assert report["top1_drop"] == pytest.approx(report["clean_top1"] - report["top1"], abs=2e-4)


def test_evaluate_without_transform_has_no_spread(repo, capsys):
    report = _evaluate(capsys, "--model", str(repo / "target"), "--repeats", "4",
                       "--samples", "300")
    assert report["transform"] is None and report["transform_source"] == "config"
    assert report["repeats"] == 1 and report["repeats_requested"] == 4
    assert report["top1_std"] == 0 and report["top5_std"] == 0
    assert report["top1"] == report["clean_top1"] and report["top1_drop"] == 0


def test_evaluate_uses_the_entrys_preprocessing_unless_told(repo, capsys):
    own = _evaluate(capsys, "--model", str(repo / "pirate"), "--repeats", "2", "--samples", "300")
    assert own["transform"] == CSRP_SPEC and own["transform_source"] == "config"
    explicit = _evaluate(capsys, "--model", str(repo / "target"), "--transform", "csrp",
                         "--sigma", "1.23", "--p", "5", "--repeats", "2", "--samples", "300")
    assert [d["top1"] for d in own["draws"]] == [d["top1"] for d in explicit["draws"]]
    clean = _evaluate(capsys, "--model", str(repo / "pirate"), "--transform", "none",
                      "--samples", "300")
    assert clean["transform"] is None and clean["transform_source"] == "option"
    assert clean["top1"] == own["clean_top1"]


def test_evaluate_rdg_and_seeds(repo, capsys):
    argv = ["--model", str(repo / "target"), "--transform", "rdg", "--distort-limit", "0.4",
            "--repeats", "2", "--samples", "300"]
    first, again = _evaluate(capsys, *argv), _evaluate(capsys, *argv)
    assert first["transform"] == {"name": "rdg", "distort_limit": 0.4, "num_cells": 10}
    assert first["draws"] == again["draws"]  # same seed, same draws
    other = _evaluate(capsys, *argv, "--seed", "9")
    assert [d["seed"] for d in other["draws"]] == [9, 10]


def test_evaluate_onnx_only_int8_entry(repo, capsys, fmnist_train, fmnist_test):
    quantize_entry(repo / "target", repo / "int8", fmnist_train, fmnist_test.take(100),
                   calibration=64)
    assert not (repo / "int8" / WEIGHTS_FILE).exists()
    report = _evaluate(capsys, "--model", str(repo / "int8"), "--transform", "csrp", "--sigma",
                       "1.23", "--p", "5", "--repeats", "2", "--samples", "300")
    assert report["backend"] == "onnx" and report["repeats"] == 2
    assert 0.3 < report["clean_top1"] <= 1.0


@pytest.mark.parametrize(("argv", "message"), [
    (["--model", "{repo}/nope"], "missing"),
    (["--model", "{repo}/target", "--repeats", "0"], r"--repeats must be >= 1"),
    (["--model", "{repo}/target", "--samples", "0"], r"--samples must be >= 1"),
    (["--model", "{repo}/target", "--transform", "blur"], "unknown transform 'blur'"),
    (["--model", "{repo}/target", "--sigma", "1.2"], "--sigma/--p belong to --transform csrp"),
    (["--model", "{repo}/target", "--transform", "csrp", "--sigma", "1.2", "--p", "-2"],
     r"p must be an integer in 0\.\.1024"),
    (["--model", "{repo}/target", "--transform", "csrp", "--sigma", "1", "--p", "2"],
     r"sigma must be a number in \(1, 4\]"),
])
def test_evaluate_bad_input(repo, capsys, argv, message):
    code = main(["evaluate", *(a.format(repo=repo) for a in argv)])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2 and captured.out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert re.search(message, err), err
