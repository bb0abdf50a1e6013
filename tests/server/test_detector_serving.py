"""A detecting pirate over real HTTP: an entry with a query detector answers exactly what the
in-process served predictor answers (flagged queries get the runner-up label), on the ONNX
graph path, the torch path and a server without torch; a broken detector file stops start-up
with one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from models.config import DETECTOR_FILE
from models.datasets import ImageData
from models.detector import load_detector
from models.modify import detector_entry
from models.runtime import load_predictor, load_served_predictor
from models.transforms import csrp
from server.core.config import Settings
from server.pipeline.served_model import plan_models
from tests.server.conftest import (
    CSRP_SPEC,
    RunningServer,
    binary_request,
    parse_binary_response,
    start_server,
    to_uint8_nhwc,
)
from tests.server.test_torch_free import _start, _stop

ROOT = Path(__file__).resolve().parents[2]
SEED = 11


@pytest.fixture(scope="module")
def detector_repo(tiny_repo: Path, fmnist_train: ImageData, fmnist_test: ImageData,
                  tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("detector-repo")
    shutil.copytree(tiny_repo / "target", repo / "target")
    small = fmnist_test.take(200)
    # a loose threshold (20% clean fpr) so that plenty of the test images are flagged
    detector_entry(repo / "target", repo / "detector", fmnist_train, small, fpr=0.2,
                   fraction=0.1, repeats=1)
    detector_entry(repo / "target", repo / "detector-csrp", fmnist_train, small, fpr=0.2,
                   fraction=0.1, transform=CSRP_SPEC, repeats=1)
    return repo


def expected(repo: Path, name: str, images: torch.Tensor) -> np.ndarray:
    served = load_served_predictor(repo / name, "onnx")
    if name.endswith("csrp"):
        images = csrp(images, CSRP_SPEC["sigma"], CSRP_SPEC["p"],
                      generator=torch.Generator().manual_seed(SEED))
    return served.predict(images).numpy()


def ask(url: str, name: str, images: torch.Tensor) -> np.ndarray:
    body, headers = binary_request(to_uint8_nhwc(images),
                                   parameters={"binary_data_output": True})
    with httpx.Client(base_url=url, timeout=60) as client:
        response = client.post(f"/v2/models/{name}/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    return parse_binary_response(response)[1]


@pytest.mark.parametrize("preprocess_in", ["graph", "torch"])
def test_served_answers_are_the_detectors(detector_repo: Path, test_images: torch.Tensor,
                                          preprocess_in: str) -> None:
    flagged = load_detector(detector_repo / "detector" / DETECTOR_FILE, 10).flagged(
        load_predictor(detector_repo / "target").logits(test_images).numpy())
    assert 0 < flagged.sum() < len(flagged)  # the test exercises both kinds of answer
    for name in ("detector", "detector-csrp"):
        running: RunningServer = start_server(repository=detector_repo, seed=SEED,
                                              device="cpu", models=(name,),
                                              preprocess_in=preprocess_in)
        try:
            got = ask(running.url, name, test_images)
        finally:
            running.stop()
        np.testing.assert_array_equal(got, expected(detector_repo, name, test_images))
    plain = load_predictor(detector_repo / "target").predict(test_images).numpy()
    answered = expected(detector_repo, "detector", test_images)
    assert ((answered != plain) == flagged).all()


def test_detector_serves_without_torch(detector_repo: Path, test_images: torch.Tensor) -> None:
    process, url = _start(detector_repo, "--models", "detector,detector-csrp", "--seed",
                          str(SEED))
    try:
        got = {name: ask(url, name, test_images) for name in ("detector", "detector-csrp")}
    finally:
        log = _stop(process)
    assert "Traceback" not in log, log
    for name, labels in got.items():
        np.testing.assert_array_equal(labels, expected(detector_repo, name, test_images))


@pytest.mark.parametrize("damage", ["missing", "pickle", "wrong-shape"])
def test_a_broken_detector_stops_start_up_with_one_line(detector_repo: Path, tmp_path: Path,
                                                        damage: str) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(detector_repo / "detector", repo / "detector")
    file = repo / "detector" / DETECTOR_FILE
    if damage == "missing":
        file.unlink()
    elif damage == "pickle":
        file.write_bytes(b"\x80\x04K\x01.")
    else:
        from safetensors.numpy import save_file

        save_file({"means": np.zeros((3, 3)), "precision": np.eye(3),
                   "threshold": np.ones(1)}, str(file))
    with pytest.raises(Exception, match="detector") as raised:
        plan_models(Settings(repository=repo, models=("detector",)))
    assert "\n" not in str(raised.value)
    done = subprocess.run(
        [sys.executable, "-m", "server", "--repository", str(repo), "--port", "0",
         "--device", "cpu", "--models", "detector"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: model 'detector': ") and "detector" in line[24:], line
