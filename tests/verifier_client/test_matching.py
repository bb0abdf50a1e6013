"""In-process matching rates and the ``generate`` / ``match`` commands on the tiny repository."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models.errors import UserError
from models.repository import load_model
from models.runtime import load_predictor
from models.transforms import build_transform
from verifier_client.cli import main
from verifier_client.fingerprint_set import FingerprintSet, snap_to_grid
from verifier_client.fingerprints import create_method
from verifier_client.matching import matching_rates


@pytest.fixture(scope="module")
def vce_file(tiny_repo: Path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sets") / "vce.safetensors"
    code = main(["generate", "--method", "vce", "--target", str(tiny_repo / "target"), "--n", "12",
                 "--seed", "1", "--param", "steps=15", "--out", str(path)])
    assert code == 0 and path.is_file()
    return path


def test_target_matches_fully_on_both_backends(tiny_repo, vce_file):
    fset = FingerprintSet.load(vce_file)
    for backend in ("torch", "onnx"):
        result = matching_rates(load_predictor(tiny_repo / "target", backend), fset, repeats=2)
        assert result.rates == [1.0, 1.0] and result.mean == 1.0 and result.std == 0.0
        assert result.n == 12 and result.method == "vce" and result.transform is None


def test_logits_function_and_independent_model(tiny_repo, vce_file):
    fset = FingerprintSet.load(vce_file)
    model, _ = load_model(tiny_repo / "indep-1")
    result = matching_rates(model, fset)  # an nn.Module is a logits function
    assert 0.0 <= result.mean < 1.0 and result.repeats == 1
    assert result.mean == pytest.approx(
        float((model(fset.images).argmax(1) == fset.labels).float().mean()))


def test_randomized_transform_repeats_replay_from_the_seed(tiny_repo, vce_file):
    fset = FingerprintSet.load(vce_file)
    predictor = load_predictor(tiny_repo / "target", "torch")
    csrp = build_transform({"name": "csrp", "sigma": 1.3, "p": 4})
    first = matching_rates(predictor, fset, transform=csrp, repeats=6, seed=5)
    again = matching_rates(predictor, fset, transform=csrp, repeats=6, seed=5)
    assert first.rates == again.rates and len(first.rates) == 6
    assert first.min <= first.mean <= first.max <= 1.0
    assert first.std == pytest.approx(float(torch.tensor(first.rates).std()))
    summary = first.summary()
    for key in ("method", "n", "repeats", "mr_mean", "mr_std", "mr_min", "mr_max", "rates"):
        assert key in summary
    assert summary["transform"] == {"name": "csrp", "sigma": 1.3, "p": 4}


def test_each_repeat_is_one_batch_of_all_samples(vce_file):
    fset = FingerprintSet.load(vce_file)
    sizes: list[int] = []

    def logits(images: torch.Tensor) -> torch.Tensor:
        sizes.append(len(images))
        return torch.nn.functional.one_hot(fset.labels, 10).float()

    assert matching_rates(logits, fset, repeats=3).rates == [1.0, 1.0, 1.0]
    assert sizes == [12, 12, 12]
    with pytest.raises(UserError, match="repeats must be an integer >= 1"):
        matching_rates(logits, fset, repeats=0)


# ------------------------------------------------------------------------- the match command


def test_match_command_default_preprocessing_and_json(tiny_repo, vce_file, tmp_path, capsys):
    out = tmp_path / "mr.json"
    code = main(["match", "--fingerprints", str(vce_file), "--model",
                 str(tiny_repo / "target"), "--repeats", "2", "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "preprocessing: null (the model's own preprocessing (config.json))" in printed
    assert "matching rate mean 1.0000" in printed
    data = json.loads(out.read_text())
    assert data["mr_mean"] == 1.0 and data["repeats"] == 2 and data["backend"] == "onnx"


def test_match_command_with_csrp_and_forced_none(tiny_repo, vce_file, tmp_path, capsys):
    out = tmp_path / "csrp.json"
    assert main(["match", "--fingerprints", str(vce_file), "--model", str(tiny_repo / "indep-2"),
                 "--transform", "csrp", "--sigma", "1.16", "--p", "3", "--repeats", "3",
                 "--seed", "2", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["transform"] == {"name": "csrp", "sigma": 1.16, "p": 3}
    assert len(data["rates"]) == 3 and data["transform_origin"] == "command line"
    assert main(["match", "--fingerprints", str(vce_file), "--model", str(tiny_repo / "target"),
                 "--transform", "none"]) == 0
    assert "none (forced)" in capsys.readouterr().out


@pytest.mark.parametrize(("extra", "message"), [
    (["--transform", "csrp"], "--transform csrp needs --sigma and --p"),
    (["--sigma", "1.2"], "--sigma/--p belong to --transform csrp"),
    (["--transform", "csrp", "--sigma", "0.5", "--p", "3"], "bad transform"),
])
def test_match_command_bad_transform(tiny_repo, vce_file, capsys, extra, message):
    code = main(["match", "--fingerprints", str(vce_file), "--model", str(tiny_repo / "target"),
                 *extra])
    assert code == 2 and message in capsys.readouterr().err


def test_match_command_refuses_other_input_shapes_and_corrupt_sets(tiny_repo, tmp_path, capsys):
    meta = {"method": "vce", "parameters": {}, "target": {}, "seed": 0, "code_version": "t",
            "candidates_tried": 2, "created": "now"}
    other = FingerprintSet(snap_to_grid(torch.rand(2, 3, 32, 32)), torch.zeros(2, dtype=torch.long),
                           meta).save(tmp_path / "cifar.safetensors")
    code = main(["match", "--fingerprints", str(other), "--model", str(tiny_repo / "target")])
    err = capsys.readouterr().err
    assert code == 2 and "input shape [3, 32, 32] does not match the model" in err
    assert len(err.strip().splitlines()) == 1
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(other.read_bytes()[:100])
    code = main(["match", "--fingerprints", str(broken), "--model", str(tiny_repo / "target")])
    assert code == 2 and "not a valid fingerprint set file" in capsys.readouterr().err


# ------------------------------------------------------------------------- the generate command


def test_generate_command_writes_a_complete_set(tiny_repo, tmp_path, capsys):
    out = tmp_path / "ipguard.safetensors"
    code = main(["generate", "--method", "ipguard", "--target", str(tiny_repo / "target"),
                 "--n", "4", "--seed", "7", "--param", "steps=10", "--param", "k=0.5",
                 "--seed-count", "50", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "candidates tried" in printed and " s\n" in printed
    fset = FingerprintSet.load(out)
    meta = fset.metadata
    assert meta["method"] == "ipguard" and meta["seed"] == 7
    assert meta["parameters"]["k"] == 0.5 and meta["parameters"]["steps"] == 10
    assert meta["target"]["path"] == str(tiny_repo / "target")
    assert meta["target"]["lineage"]["modification"] == "train"
    assert meta["seeds"]["dataset"] == "fashion-mnist" and meta["seeds"]["split"] == "test"
    assert bool((fset.sources < 50).all())
    same = create_method("ipguard", steps=10, k=0.5)
    assert same.parameters() == meta["parameters"]


@pytest.mark.parametrize(("args", "message"), [
    (["--method", "nope"], "unknown fingerprinting method 'nope'"),
    (["--method", "vce", "--n", "0"], "argument --n: must be >= 1, got 0"),
    (["--method", "vce", "--n", "-2"], "argument --n: must be >= 1, got -2"),
    (["--method", "cae", "--param", "eps=0.5e-3"], r"eps must be in [1/255, 1]"),
    (["--method", "rce-lt", "--param", "k=40"], "k must be in [1, 27] for 28 x 28 images"),
    (["--method", "ipguard", "--param", "k=0"], "k must be a finite number > 0"),
    (["--method", "vce", "--param", "bogus=1"], "unknown parameter(s) bogus"),
    (["--method", "cae"], "cae needs model pools"),
    (["--method", "vce", "--pools", "p.json"], "vce does not use model pools"),
    (["--method", "vce", "--param", "steps=1", "--param", "max_rounds=1", "--param",
      "margin=1000"], "only 0 of 3 samples accepted after 1 rounds"),
])
def test_generate_command_bad_input_leaves_no_file(tiny_repo, tmp_path, capsys, args, message):
    out = tmp_path / "set.safetensors"
    code = main(["generate", "--target", str(tiny_repo / "target"), "--n", "3", "--out", str(out),
                 *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
