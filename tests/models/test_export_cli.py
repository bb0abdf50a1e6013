"""``python -m models export`` (re-export with parity) and ``python -m models info``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models.cli import main
from models.repository import ONNX_FILE, WEIGHTS_FILE, load_config, load_model
from models.runtime import OnnxPredictor, TorchPredictor

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def entry(tmp_path: Path, tiny_repo: Path) -> Path:
    path = tmp_path / "repo" / "target"
    shutil.copytree(tiny_repo / "target", path)
    return path


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


def test_export_cli_rewrites_onnx_with_parity(entry, fmnist_test):
    (entry / ONNX_FILE).write_bytes(b"not an onnx graph")
    result = subprocess.run(
        [sys.executable, "-m", "models", "export", "--model", str(entry), "--check-samples", "64"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["samples"] == 64 and report["labels_identical"] is True
    assert report["label_agreement"] == 1.0 and report["written"] is True
    assert 0.0 <= report["max_abs_logit_diff"] < 1e-3
    images = fmnist_test.floats(slice(0, 100))
    assert torch.equal(OnnxPredictor(entry).predict(images), TorchPredictor(entry).predict(images))
    config = load_config(entry)
    assert config.metrics["onnx_max_abs_logit_diff"] == report["max_abs_logit_diff"]
    assert config.metrics["test_top1"] > 0  # other metrics kept
    assert sorted(p.name for p in entry.parent.iterdir()) == ["target"]  # no temp files left


def test_export_refuses_onnx_only_entry(entry, capsys):
    (entry / WEIGHTS_FILE).unlink()
    graph = (entry / ONNX_FILE).read_bytes()
    assert main(["export", "--model", str(entry)]) == 2
    assert WEIGHTS_FILE in _one_error_line(capsys)
    assert (entry / ONNX_FILE).read_bytes() == graph


def test_export_refuses_pickled_weights(entry, capsys):
    torch.save(load_model(entry)[0].state_dict(), entry / WEIGHTS_FILE)
    graph = (entry / ONNX_FILE).read_bytes()
    assert main(["export", "--model", str(entry)]) == 2
    assert "pickle" in _one_error_line(capsys)
    assert (entry / ONNX_FILE).read_bytes() == graph


def test_export_refuses_missing_entry(tmp_path, capsys):
    assert main(["export", "--model", str(tmp_path / "nope")]) == 2
    assert "config.json" in _one_error_line(capsys)


def test_info_model_text_and_json(entry, capsys):
    assert main(["info", "--model", str(entry)]) == 0
    text = capsys.readouterr().out
    assert "tinycnn" in text and "fashion-mnist" in text and "lineage" in text
    assert "model.safetensors" in text and "test_top1=" in text
    assert main(["info", "--model", str(entry), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config"]["name"] == "target"
    assert data["config"]["lineage"]["modification"] == "train"
    assert set(data["files"]) == {"config.json", ONNX_FILE, WEIGHTS_FILE}


def test_info_lists_repository(tiny_repo, capsys):
    assert main(["info", "--repo", str(tiny_repo)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:3] == ["NAME", "ARCH", "DATASET"]
    assert [line.split()[0] for line in lines[1:]] == ["indep-1", "indep-2", "target"]
    assert main(["info", "--repo", str(tiny_repo), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in data["entries"]] == ["indep-1", "indep-2", "target"]
    assert all(e["arch"] == "tinycnn" and e["test_top1"] > 0 for e in data["entries"])
    assert main(["info", "--model", str(tiny_repo)]) == 0  # a folder of entries is listed too
    assert "indep-2" in capsys.readouterr().out


def test_info_bad_input(tmp_path, capsys):
    assert main(["info", "--repo", str(tmp_path / "nope")]) == 2
    assert "not found" in _one_error_line(capsys)
    assert main(["info", "--model", str(tmp_path)]) == 2  # an empty folder: not an entry
    assert "config.json" in _one_error_line(capsys)
