"""``python -m models train`` end to end: a loadable entry on success; on bad input one error
line, a non-zero exit and nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models.cli import main
from models.datasets.fashion_mnist import DEBIAN_DIR
from models.repository import CONFIG_FILE, ONNX_FILE, WEIGHTS_FILE, load_model
from models.runtime import load_predictor
from tests.models.test_datasets import write_cifar10

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run_cli(*args: str, tmp_path: Path, data_dir: Path | None = None
             ) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a subprocess; ``CSRP_DATA_DIR`` is ``data_dir`` when given, else unset
    (so the Debian package is found)."""
    env = {k: v for k, v in os.environ.items() if k != "CSRP_DATA_DIR"}
    env |= {"CSRP_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "2"}
    if data_dir is not None:
        env["CSRP_DATA_DIR"] = str(data_dir)
    return subprocess.run([sys.executable, "-m", "models", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def _json_tail(stdout: str) -> dict:
    return json.loads(stdout[stdout.index("{"):])


def _assert_one_error_line(stderr: str, *needles: str) -> None:
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_train_writes_a_loadable_entry(tmp_path):
    out = tmp_path / "repo" / "tiny"
    result = _run_cli("train", "--arch", "tinycnn", "--dataset", "fashion-mnist",
                      "--train-fraction", "0.02", "--epochs", "1", "--seed", "3",
                      "--out", str(out), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = _json_tail(result.stdout)
    assert summary["out"] == str(out) and 0.0 <= summary["test_top1"] <= summary["test_top5"] <= 1
    assert sorted(p.name for p in out.iterdir()) == [CONFIG_FILE, ONNX_FILE, WEIGHTS_FILE]
    assert [p.name for p in out.parent.iterdir()] == ["tiny"]  # no temporary folder left
    model, config = load_model(out)
    assert not model.training
    assert (config.arch, config.dataset, config.input_shape) == ("tinycnn", "fashion-mnist",
                                                                  [1, 28, 28])
    assert config.lineage.modification == "train" and config.lineage.seed == 3
    assert config.lineage.parameters["train_fraction"] == 0.02
    assert config.lineage.parameters["epochs"] == 1
    assert config.metrics["test_top1"] == summary["test_top1"]
    images = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert torch.equal(load_predictor(out, "onnx").predict(images),
                       load_predictor(out, "torch").predict(images))


def test_train_on_a_user_cifar10_folder(tmp_path):
    write_cifar10(tmp_path / "cifar")
    out = tmp_path / "repo" / "c10"
    code = main(["train", "--arch", "tinycnn", "--dataset", "cifar10", "--data-root",
                 str(tmp_path / "cifar"), "--epochs", "1", "--batch-size", "8", "--out", str(out)])
    assert code == 0
    _, config = load_model(out)
    assert (config.dataset, config.num_classes, config.input_shape) == ("cifar10", 10, [3, 32, 32])
    assert config.labels[0] == "airplane"


def test_missing_data_is_one_line_and_writes_nothing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "repo" / "m"
    result = _run_cli("train", "--arch", "tinycnn", "--dataset", "cifar10", "--data-root",
                      str(empty), "--out", str(out), tmp_path=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # exactly one line
    _assert_one_error_line(result.stderr, "dataset 'cifar10' not found", str(empty),
                           "--data-root")
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("args, needles", [
    (["--arch", "resnet18"], ["unknown architecture 'resnet18'", "resnet20"]),
    (["--arch", "tinycnn", "--dataset", "imagenet"], ["unknown dataset 'imagenet'", "cifar10"]),
])
def test_unknown_arch_or_dataset(tmp_path, capsys, args, needles):
    out = tmp_path / "repo" / "m"
    assert main(["train", *args, "--out", str(out)]) == 2
    _assert_one_error_line(capsys.readouterr().err, *needles)
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("name", ["BAD", "..", ".hidden", "-x", "a b"])
def test_bad_out_name(tmp_path, capsys, name):
    assert main(["train", "--arch", "tinycnn", "--out", f"{tmp_path}/repo/{name}"]) == 2
    _assert_one_error_line(capsys.readouterr().err, "--out", "invalid model name")
    assert not (tmp_path / "repo").exists()
