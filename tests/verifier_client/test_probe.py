"""The randomness probe tells a deterministic model from one behind CSRP (real server)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.atomic import write_json
from models.local_server import LocalServer
from models.repository import load_config
from verifier_client.cli import main
from verifier_client.probe import (
    DETECTED,
    NOT_DETECTED,
    default_inputs,
    flip_statistics,
    probe,
    wilson_interval,
)


@pytest.fixture(scope="module")
def server(tiny_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``plain`` (the target as is) and ``csrp`` (the same weights behind CSRP 1.16 / 3: the
    data-free pirate)."""
    repo = tmp_path_factory.mktemp("probe-repo")
    shutil.copytree(tiny_repo / "target", repo / "plain")
    shutil.copytree(tiny_repo / "target", repo / "csrp")
    config = load_config(repo / "csrp").model_copy(update={
        "name": "csrp", "preprocessing": {"name": "csrp", "sigma": 1.16, "p": 3}})
    write_json(repo / "csrp" / "config.json", json.loads(config.model_dump_json()))
    running = LocalServer(repo, "--seed", "0").start()
    yield running
    running.stop()


def test_deterministic_model_never_flips(server: LocalServer) -> None:
    result = probe(server.url, "plain", trials=10)
    assert result["flip_rate"] == 0.0 and result["inputs_flipping"] == 0
    assert result["flip_rate_ci95"][0] == 0.0 and result["conclusion"] == NOT_DETECTED
    assert result["inputs"] == 16 and result["trials"] == 10


def test_csrp_model_flips(server: LocalServer, tmp_path: Path,
                          capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "probe.json"
    assert main(["probe", "--url", server.url, "--model", "csrp", "--trials", "20",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["flip_rate"] > 0.0 and result["flip_rate_ci95"][0] > 0.0
    assert result["conclusion"] == DETECTED
    assert DETECTED in capsys.readouterr().out


def test_flip_statistics_by_hand() -> None:
    labels = np.array([[1, 2, 3], [1, 2, 3], [1, 5, 3], [1, 2, 4]])  # 4 trials x 3 inputs
    stats = flip_statistics(labels)
    assert stats["flips"] == 2 and stats["answers"] == 12
    assert stats["flip_rate"] == pytest.approx(2 / 12)
    assert stats["inputs_flipping"] == 2
    assert stats["inputs_flipping_fraction"] == pytest.approx(2 / 3)
    assert stats["conclusion"] == DETECTED
    assert flip_statistics(np.zeros((5, 2), int))["conclusion"] == NOT_DETECTED


def test_wilson_interval_known_values() -> None:
    low, high = wilson_interval(0, 800)
    assert low == 0.0 and high == pytest.approx(0.0047785, rel=1e-3)
    low, high = wilson_interval(5, 10)
    assert (low, high) == pytest.approx((0.236593, 0.763407), rel=1e-4)
    assert wilson_interval(3, 3)[1] == 1.0


def test_default_inputs_are_seeded_and_on_the_grid() -> None:
    first, again = default_inputs((1, 28, 28), 6, seed=3), default_inputs((1, 28, 28), 6, seed=3)
    assert first.shape == (6, 1, 28, 28) and np.array_equal(first, again)
    assert np.allclose(first * 255, np.rint(first * 255))
    assert not np.array_equal(first, default_inputs((1, 28, 28), 6, seed=4))
