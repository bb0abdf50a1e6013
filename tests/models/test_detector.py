"""The pirate's query detector: the Mahalanobis score against a loop, the split-conformal
threshold's clean false-positive guarantee, the runner-up answer, the file format's checks, and
``detector_entry`` on a tiny model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from models.config import DETECTOR_FILE, load_config
from models.datasets import ImageData
from models.detector import Detector, fit_detector, load_detector
from models.errors import UserError
from models.modify import detector_entry
from models.runtime import load_predictor, load_served_predictor


def clusters(n: int, k: int = 4, seed: int = 0) -> np.ndarray:
    """Logit-like points: class c has its largest coordinate at c."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    return np.eye(k)[labels] * 6 + rng.normal(size=(n, k))


def test_score_is_the_smallest_class_mahalanobis_distance() -> None:
    detector = fit_detector(clusters(400), clusters(200, seed=1), fpr=0.05)
    x = clusters(7, seed=2)
    want = [min(float((row - mu) @ detector.precision @ (row - mu)) for mu in detector.means)
            for row in x]
    np.testing.assert_allclose(detector.score(x), want, rtol=1e-10)


def test_fit_uses_predicted_classes_and_a_shared_covariance() -> None:
    x = clusters(600)
    detector = fit_detector(x, clusters(100, seed=1), fpr=0.1)
    classes = x.argmax(1)
    for c in range(4):
        np.testing.assert_allclose(detector.means[c], x[classes == c].mean(0))
    centred = x - detector.means[classes]
    covariance = np.linalg.inv(detector.precision)
    np.testing.assert_allclose(covariance, centred.T @ centred / len(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fpr", [0.01, 0.05, 0.2])
def test_threshold_keeps_the_clean_false_positive_rate(fpr: float) -> None:
    """Split-conformal: over many fits, fresh clean points are flagged at most ``fpr`` of the
    time on average (here within sampling error of 200 fits x 2000 points)."""
    rates = []
    for seed in range(200):
        detector = fit_detector(clusters(300, seed=3 * seed), clusters(300, seed=3 * seed + 1),
                                fpr=fpr)
        rates.append(float(detector.flagged(clusters(2000, seed=3 * seed + 2)).mean()))
    mean = float(np.mean(rates))
    assert mean <= fpr + 3 * math.sqrt(fpr * (1 - fpr) / (200 * 2000)) + 1e-3
    assert mean >= fpr / 3  # not a vacuous threshold that flags nothing


def test_far_points_are_flagged_and_answered_with_the_runner_up() -> None:
    detector = fit_detector(clusters(500), clusters(500, seed=1), fpr=0.01)
    logits = np.array([[6.0, 0.0, 0.0, 0.0],  # clean-looking: class 0
                       [3.0, 2.9, 0.0, 0.0],  # between classes 0 and 1
                       [40.0, 5.0, -30.0, 1.0]], dtype=np.float32)  # nothing like the data
    flagged = detector.flagged(logits)
    assert flagged.tolist() == [False, True, True]
    answered = detector.answer(logits)
    assert answered.dtype == np.float32
    assert detector.labels(logits).tolist() == [0, 1, 1]
    np.testing.assert_array_equal(answered[0], logits[0])
    assert sorted(answered[2]) == sorted(logits[2])  # only the top two swapped


@pytest.mark.parametrize("fpr, threshold_n, message", [
    (0.0, 100, "fpr"), (1.0, 100, "fpr"), (0.01, 50, "cannot certify")])
def test_fit_refuses_what_it_cannot_guarantee(fpr: float, threshold_n: int,
                                              message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_detector(clusters(100), clusters(threshold_n, seed=1), fpr=fpr)


def test_fit_needs_every_class_predicted() -> None:
    x = clusters(100)
    with pytest.raises(ValueError, match="class"):
        fit_detector(x[x.argmax(1) != 2], clusters(100, seed=1), fpr=0.1)


def test_file_round_trip_and_refusals(tmp_path: Path) -> None:
    detector = fit_detector(clusters(300), clusters(300, seed=1), fpr=0.05)
    detector.save(tmp_path / DETECTOR_FILE, {"parent": "target"})
    loaded = load_detector(tmp_path / DETECTOR_FILE, 4)
    assert loaded.threshold == detector.threshold and loaded.fpr == 0.05
    np.testing.assert_array_equal(loaded.precision, detector.precision)
    with pytest.raises(UserError, match="finite means"):
        load_detector(tmp_path / DETECTOR_FILE, 10)  # the model has 10 classes, not 4
    (tmp_path / "pickle").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(UserError, match="not a readable detector"):
        load_detector(tmp_path / "pickle", 4)
    Detector(detector.means, detector.precision * np.nan, 1.0, 0.05).save(tmp_path / "nan")
    with pytest.raises(UserError, match="finite"):
        load_detector(tmp_path / "nan", 4)
    with pytest.raises(UserError, match="not found"):
        load_detector(tmp_path / "missing", 4)


def test_detector_entry_serves_the_same_weights_behind_the_detector(
        tiny_repo: Path, fmnist_train: ImageData, fmnist_test: ImageData,
        tmp_path: Path) -> None:
    out = tmp_path / "target-detector"
    config = detector_entry(tiny_repo / "target", out, fmnist_train, fmnist_test, fpr=0.05,
                            fraction=0.2, transform={"name": "csrp", "sigma": 1.23, "p": 2},
                            seed=3, repeats=2)
    assert load_config(out) == config
    assert config.detector is not None and config.detector.fpr == 0.05
    assert config.preprocessing == {"name": "csrp", "sigma": 1.23, "p": 2}
    assert config.lineage.modification == "detector" and config.lineage.parent.endswith("target")
    assert (out / "model.onnx").read_bytes() == (tiny_repo / "target" / "model.onnx").read_bytes()
    m = config.metrics
    assert 0 <= m["clean_flagged"] <= 0.15  # stated 5%, measured on 1000 unseen test images
    assert m["served_top1"] <= m["transform_top1"] + 1e-9
    params = config.lineage.parameters
    assert params["fit_samples"] + params["threshold_samples"] == round(0.2 * len(fmnist_train))
    # what the studies measure as served: the detector's answers
    plain, served = load_predictor(out), load_served_predictor(out)
    x = fmnist_test.floats(slice(0, 200))
    flagged = load_detector(out / DETECTOR_FILE, 10).flagged(plain.logits(x).numpy())
    same = served.predict(x) == plain.predict(x)
    assert torch.equal(same, torch.from_numpy(~flagged))


def test_detector_entry_needs_enough_pirate_data(tiny_repo: Path, fmnist_train: ImageData,
                                                 fmnist_test: ImageData,
                                                 tmp_path: Path) -> None:
    with pytest.raises(UserError, match="at least 200"):
        detector_entry(tiny_repo / "target", tmp_path / "d", fmnist_train, fmnist_test,
                       fraction=0.01)
    assert not (tmp_path / "d").exists()


def test_a_detecting_entrys_config_is_plain_json(tiny_repo: Path, fmnist_train: ImageData,
                                                 fmnist_test: ImageData,
                                                 tmp_path: Path) -> None:
    out = tmp_path / "det"
    detector_entry(tiny_repo / "target", out, fmnist_train, fmnist_test.take(100), fpr=0.1,
                   fraction=0.1, repeats=1)
    raw = json.loads((out / "config.json").read_text())
    assert raw["detector"] == {"name": "mahalanobis", "fpr": 0.1, "answer": "runner-up"}
