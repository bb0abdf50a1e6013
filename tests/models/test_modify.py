"""Baseline pirates (int8, prune, FTAL): each writes a loadable entry with lineage, does what it
says (sparsity, integer kernels, changed weights) and keeps accuracy within a few points."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models.architectures import Classifier, Normalize, create_model
from models.cli import main
from models.errors import UserError
from models.modify import (
    evaluate,
    finetune,
    ftal_entry,
    int8_op_counts,
    prune_entry,
    prune_model,
    quantize_entry,
    quantize_onnx,
    resolve_parent,
    sparsity,
)
from models.onnx_export import export_onnx
from models.repository import ONNX_FILE, WEIGHTS_FILE, load_config, load_model
from models.runtime import OnnxPredictor, load_predictor
from models.training import TrainSettings

ROOT = Path(__file__).resolve().parents[2]
ACCURACY_SLACK = 0.05


@pytest.fixture
def repo(tmp_path: Path, tiny_repo: Path) -> Path:
    """A private copy of the tiny target, so tests may write beside it."""
    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo / "target", repo / "target")
    return repo


def _tiny_model() -> Classifier:
    torch.manual_seed(0)
    return Classifier(Normalize([0.286], [0.353]), create_model("tinycnn", 10, 1, 28)).eval()


# --- pruning -------------------------------------------------------------------------------

def test_prune_model_is_permanent():
    model = _tiny_model()
    keys = set(model.state_dict())
    measured = prune_model(model, 0.5)
    assert set(model.state_dict()) == keys  # no weight_orig / weight_mask left behind
    assert not any(m._forward_pre_hooks for m in model.modules())
    assert measured == pytest.approx(0.5, abs=0.01)
    assert sparsity(model) == measured


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_prune_entry_reaches_rate_and_loads(repo, fmnist_test, rate):
    test = fmnist_test.take(200)
    config = prune_entry(repo / "target", repo / "pruned", rate, test)
    model, loaded = load_model(repo / "pruned")
    assert sparsity(model) == pytest.approx(rate, abs=0.01)
    assert loaded.lineage.parent == "target"
    assert loaded.lineage.modification == "prune"
    assert loaded.lineage.parameters["rate"] == rate
    assert loaded.lineage.parameters["scope"] == "global-l1"
    assert loaded.lineage.parameters["measured_sparsity"] == pytest.approx(rate, abs=0.01)
    assert config.metrics["sparsity"] == pytest.approx(rate, abs=0.01)
    onnx_labels = OnnxPredictor(repo / "pruned").predict(test.floats())
    assert torch.equal(onnx_labels, evaluate(model, test).labels)


@pytest.mark.parametrize("rate", [0.0, 0.05, 0.95, 1.0])
def test_prune_rejects_rate_out_of_range(repo, fmnist_test, rate):
    with pytest.raises(UserError, match=r"pruning rate must be in \[0.1, 0.9\]"):
        prune_entry(repo / "target", repo / "pruned", rate, fmnist_test.take(10))
    assert sorted(p.name for p in repo.iterdir()) == ["target"]


# --- int8 ----------------------------------------------------------------------------------

def test_int8_entry_runs_int8_kernels_and_keeps_accuracy(repo, fmnist_train, fmnist_test):
    config = quantize_entry(repo / "target", repo / "int8", fmnist_train, fmnist_test,
                            calibration=256, seed=5)
    out = repo / "int8"
    assert sorted(p.name for p in out.iterdir()) == ["config.json", ONNX_FILE]
    predictor = load_predictor(out)
    assert isinstance(predictor, OnnxPredictor)
    assert predictor.config.backend == "onnx"
    ops = int8_op_counts((out / ONNX_FILE).read_bytes())
    assert ops["quantize_linear"] > 0 and ops["dequantize_linear"] > 0
    optimized = ops["ort_optimized_ops"]
    assert optimized.get("QLinearConv", 0) + optimized.get("ConvInteger", 0) == 3  # all convs
    assert ops["float_conv_matmul_kernels"] == 0
    assert config.metrics["int8_conv_kernels"] == 3
    float_model, _ = load_model(repo / "target")
    float_eval, int8_eval = evaluate(float_model, fmnist_test), evaluate(predictor.logits,
                                                                          fmnist_test)
    assert len(fmnist_test) == 1000
    assert abs(int8_eval.top1 - float_eval.top1) <= ACCURACY_SLACK
    assert config.metrics["test_top1"] == pytest.approx(int8_eval.top1, abs=1e-4)
    assert config.metrics["parent_test_top1"] == pytest.approx(float_eval.top1, abs=1e-4)
    images = fmnist_test.floats(slice(0, 64))
    with torch.inference_mode():
        assert not torch.allclose(predictor.logits(images), float_model(images), atol=1e-4)
    lineage = load_config(out).lineage
    assert (lineage.parent, lineage.modification, lineage.seed) == ("target", "int8", 5)
    assert lineage.parameters["calibration"] == 256
    assert lineage.parameters["format"] == "QDQ"
    assert lineage.parameters["per_channel"] is True
    with pytest.raises(UserError, match=WEIGHTS_FILE):
        load_model(out)


@pytest.mark.parametrize("activations", ["uint8", "int8"])
def test_quantize_onnx_fuses_convs(activations):
    model = _tiny_model()
    quantised = quantize_onnx(export_onnx(model, [1, 28, 28]), torch.rand(32, 1, 28, 28),
                              activation_type=activations)
    ops = int8_op_counts(quantised)
    assert ops["int8_conv_kernels"] == 3
    assert ops["float_conv_matmul_kernels"] == 0


# --- FTAL ----------------------------------------------------------------------------------

def test_ftal_changes_weights_and_keeps_accuracy(repo, fmnist_train, fmnist_test):
    config = ftal_entry(repo / "target", repo / "ftal", fmnist_train, fmnist_test, epochs=1,
                        fraction=0.125, lr=0.01, seed=3, show_progress=False)
    before, _ = load_model(repo / "target")
    after, loaded = load_model(repo / "ftal")
    old, new = before.state_dict(), after.state_dict()
    changed = [k for k in old if not torch.equal(old[k], new[k])]
    assert any(k.endswith("weight") and "net.0" in k for k in changed)  # first conv moved
    assert abs(config.metrics["test_top1"] - config.metrics["parent_test_top1"]) <= ACCURACY_SLACK
    assert config.metrics["weight_relative_change"] > 0
    lineage = loaded.lineage
    assert (lineage.parent, lineage.modification, lineage.seed) == ("target", "ftal", 3)
    assert lineage.parameters["fraction"] == 0.125
    assert lineage.parameters["train_samples"] == 600
    assert lineage.parameters["lr"] == 0.01


def test_finetune_trains_all_layers_through_transform(fmnist_train):
    model = _tiny_model()
    first = model.net[0].weight
    first.requires_grad_(False)  # FTAL unfreezes everything
    start = first.detach().clone()
    calls = []

    def transform(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        calls.append(len(images))
        return images

    finetune(model, fmnist_train.take(200), TrainSettings(epochs=1, batch_size=128, lr=0.01),
             transform=transform, show_progress=False)
    assert calls == [128, 72]
    assert not torch.equal(model.net[0].weight, start)
    assert not model.training


def test_resolve_parent_refuses_self_and_unknown(repo):
    with pytest.raises(UserError, match="is the parent entry itself"):
        resolve_parent(repo / "target", repo / "." / "target")
    with pytest.raises(UserError, match="missing"):
        resolve_parent(repo / "nope", repo / "child")
    with pytest.raises(UserError, match="invalid model name"):
        resolve_parent(repo / "target", repo / "Bad Name")
    config, ref = resolve_parent(repo / "target", repo.parent / "other" / "child")
    assert config.name == "target" and ref == str(repo / "target")


# --- command line --------------------------------------------------------------------------

CLI_CASES = {
    "int8": ["--calibration", "64", "--seed", "1"],
    "prune": ["--rate", "0.3"],
    "ftal": ["--epochs", "1", "--fraction", "0.005", "--lr", "0.01", "--seed", "2"],
}


@pytest.mark.parametrize("kind", sorted(CLI_CASES))
def test_modify_cli_end_to_end(repo, kind):
    out = repo / f"pirate-{kind}"
    result = subprocess.run(
        [sys.executable, "-m", "models", "modify", kind, "--from", str(repo / "target"),
         "--out", str(out), "--test-samples", "300", *CLI_CASES[kind]],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["modification"] == kind
    assert summary["test_samples"] == 300
    assert 0.0 <= summary["test_top1"] <= 1.0 and 0.0 <= summary["parent_test_top1"] <= 1.0
    config = load_config(out)
    assert config.lineage.parent == "target" and config.lineage.modification == kind
    assert load_predictor(out).predict(torch.rand(2, 1, 28, 28)).shape == (2,)
    if kind == "prune":
        assert summary["sparsity"] == pytest.approx(0.3, abs=0.01)
    if kind == "int8":
        assert summary["int8_conv_kernels"] > 0 and not (out / WEIGHTS_FILE).exists()


def _pickled(repo: Path) -> Path:
    bad = repo / "pickled"
    shutil.copytree(repo / "target", bad)
    state = load_model(bad)[0].state_dict()
    torch.save(state, bad / WEIGHTS_FILE)
    return bad


@pytest.mark.parametrize(("argv", "message"), [
    (["prune", "--from", "{repo}/target", "--rate", "1.5", "--out", "{repo}/x"],
     r"pruning rate must be in \[0.1, 0.9\], got 1.5"),
    (["prune", "--from", "{repo}/nope", "--rate", "0.5", "--out", "{repo}/x"], "missing"),
    (["int8", "--from", "{repo}/nope", "--out", "{repo}/x"], "missing"),
    (["int8", "--from", "{repo}/pickled", "--out", "{repo}/x"], "pickle"),
    (["ftal", "--from", "{repo}/pickled", "--out", "{repo}/x"], "pickle"),
    (["prune", "--from", "{repo}/target", "--rate", "0.5", "--out", "{repo}/target"],
     "parent entry itself"),
    (["ftal", "--from", "{repo}/target", "--fraction", "0", "--out", "{repo}/x"],
     r"--fraction: must be in \(0, 1\], got 0.0"),
])
def test_modify_cli_bad_input(repo, capsys, argv, message):
    _pickled(repo)
    before = sorted(p.name for p in repo.iterdir())
    target_files = {p.name: p.read_bytes() for p in (repo / "target").iterdir()}
    code = main(["modify", *(a.format(repo=repo) for a in argv)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert re.search(message, err), err
    assert sorted(p.name for p in repo.iterdir()) == before  # nothing written, no temp folder
    assert {p.name: p.read_bytes() for p in (repo / "target").iterdir()} == target_files
