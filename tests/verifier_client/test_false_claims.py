"""The false accuser and the defence: the transfer generator stays in its ball and transfers,
commitments tie a set to the model it was made on, ``verify --commitments`` refuses what is
not committed, and the false-claims study decides innocents with the verify code."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from models.datasets import load_dataset
from models.errors import UserError
from models.local_server import LocalServer
from models.repository import load_model
from verifier_client.calibration import local_rates
from verifier_client.cli import main
from verifier_client.commitment import check_committed, commit_set, load_registry, model_digest
from verifier_client.fingerprint_set import FingerprintSet, load_sets, target_metadata
from verifier_client.fingerprints import create_method
from verifier_client.studies.false_claims import decide_against, false_claims

from .test_verify import cli_error


@pytest.fixture(scope="module")
def claim(tiny_repo: Path, fmnist_test: Any, tmp_path_factory: pytest.TempPathFactory
          ) -> FingerprintSet:
    """A transfer set of 30 samples made on the tiny target (fewer steps than the default)."""
    model, config = load_model(tiny_repo / "target")
    fset = create_method("transfer", steps=40, alpha=0.02).generate(
        model, 30, generator=torch.Generator().manual_seed(4), seeds=fmnist_test.take(300),
        target=target_metadata(tiny_repo / "target", config))
    path = tmp_path_factory.mktemp("claim") / "transfer.safetensors"
    fset.save(path)
    return FingerprintSet.load(path)


def test_transfer_samples_stay_in_their_ball_and_carry_a_new_label(claim: FingerprintSet,
                                                                   fmnist_test: Any,
                                                                   tiny_repo: Path) -> None:
    seeds = fmnist_test.take(300).floats()[claim.sources]
    images = torch.from_numpy(np.asarray(claim.images_array))
    assert float((images - seeds).abs().max()) <= 0.25 + 1 / 255
    model, _ = load_model(tiny_repo / "target")
    with torch.no_grad():
        seed_labels = model(seeds).argmax(1)
    assert bool((seed_labels != torch.from_numpy(claim.labels_array)).all())
    assert claim.metadata["parameters"]["epsilon"] == 0.25


def test_transfer_samples_transfer_to_an_independent_model(claim: FingerprintSet,
                                                           tiny_repo: Path) -> None:
    """The attack's premise: an innocent matches far above chance (1/10) on labels chosen to
    be wrong for the seed image."""
    target, innocent = (local_rates(tiny_repo / n, [claim])[0] for n in ("target", "indep-1"))
    assert target == 1.0 and innocent >= 0.5


def test_a_set_commits_only_to_the_model_it_was_made_on(claim: FingerprintSet, tiny_repo: Path,
                                                        tmp_path: Path) -> None:
    registry = tmp_path / "commitments.json"
    record = commit_set(claim, tiny_repo / "target", registry, claimant="accuser")
    assert record.model_sha256 == model_digest(tiny_repo / "target")
    assert commit_set(claim, tiny_repo / "target", registry) == record  # idempotent
    assert len(load_registry(registry).commitments) == 1
    if local_rates(tiny_repo / "indep-2", [claim])[0] < 1.0:
        with pytest.raises(UserError, match="not made on this model"):
            commit_set(claim, tiny_repo / "indep-2", tmp_path / "other.json")
        assert not (tmp_path / "other.json").exists()
    assert check_committed([claim], registry) == [record]
    with pytest.raises(UserError, match="not before"):
        check_committed([claim], registry, record.committed - timedelta(seconds=1))
    check_committed([claim], registry, datetime.now(UTC) + timedelta(days=1))


def test_uncommitted_sets_and_broken_registries_are_one_line(claim: FingerprintSet,
                                                             tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not committed"):
        check_committed([claim], tmp_path / "empty.json")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"commitments": [{"set_sha256": "x"}]}))
    with pytest.raises(UserError, match="not a commitment registry"):
        check_committed([claim], broken)
    (tmp_path / "fifo").mkdir()
    with pytest.raises(UserError, match="not a regular file"):
        load_registry(tmp_path / "fifo")


def test_commit_cli_refuses_a_set_made_elsewhere(claim: FingerprintSet, tiny_repo: Path,
                                                 tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    registry = tmp_path / "r.json"
    assert main(["commit", "--fingerprints", str(claim.path), "--model",
                 str(tiny_repo / "target"), "--registry", str(registry)]) == 0
    assert "committed transfer.safetensors" in capsys.readouterr().out
    if local_rates(tiny_repo / "indep-1", [claim])[0] < 1.0:
        err = cli_error(["commit", "--fingerprints", str(claim.path), "--model",
                         str(tiny_repo / "indep-1"), "--registry", str(tmp_path / "s.json")],
                        capsys)
        assert "not made on this model" in err


def test_verify_uses_committed_sets_only(owner: dict[str, Path], tiny_repo: Path,
                                         tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    registry = tmp_path / "commitments.json"
    args = ["verify", "--model", "target", "--fingerprints", str(owner["sets"]),
            "--calibration", str(owner["calibration"]), "--repeats", "1", "--no-progress"]
    assert "needs --commitments" in cli_error(
        [*args, "--url", "http://127.0.0.1:9", "--committed-before", "2026-01-01T00:00:00Z"],
        capsys)
    with LocalServer(tiny_repo, "--models", "target") as server:
        err = cli_error([*args, "--url", server.url, "--commitments", str(registry)], capsys)
        assert "not committed" in err
        for fset in load_sets([owner["sets"]]):
            commit_set(fset, tiny_repo / "target", registry, claimant="owner")
        out = tmp_path / "report.json"
        assert main([*args, "--url", server.url, "--commitments", str(registry),
                     "--json", str(out)]) == 0
        report = json.loads(out.read_text())
        assert {c["model"] for c in report["commitments"]} == {"target"}
        assert "committed: 2 set(s) to model target" in capsys.readouterr().out
        err = cli_error([*args, "--url", server.url, "--commitments", str(registry),
                         "--committed-before", "2020-01-01T00:00:00Z"], capsys)
        assert "not before 2020-01-01" in err


def test_decide_against_a_low_null_accuses_and_a_fair_one_does_not(
        claim: FingerprintSet) -> None:
    """The whole attack in numbers: the same innocent answers, two nulls."""
    outcomes = np.zeros((1, claim.n), dtype=bool)
    outcomes[0, :27] = True  # an innocent matching 90%
    low = {f"m{i}": r for i, r in enumerate(np.linspace(0.55, 0.7, 20))}
    fair = {f"m{i}": r for i, r in enumerate(np.linspace(0.8, 0.97, 20))}
    assert decide_against(claim, outcomes, low, 0.01)["verdict"] == "stolen"
    assert decide_against(claim, outcomes, fair, 0.01)["verdict"] != "stolen"


def test_decide_against_says_rank_when_the_null_is_not_logit_normal(
        claim: FingerprintSet) -> None:
    """An accuser's cherry-picked null (the lowest of a population: a cut-off tail) fails
    Shapiro-Wilk, so the verdict is by rank, and the study's table must say so: it said
    "parametric" beside p-values of exactly 1/21."""
    outcomes = np.zeros((1, claim.n), dtype=bool)
    outcomes[0, :27] = True
    two_clusters = {f"m{i}": 0.6 + 0.001 * i for i in range(14)}
    two_clusters.update({f"n{i}": 0.85 + 0.001 * i for i in range(6)})
    decision = decide_against(claim, outcomes, two_clusters, 0.01)
    assert decision["decided_by"] == "rank"
    assert decision["p_value"] == pytest.approx(1 / 21)
    smooth = {f"m{i}": r for i, r in enumerate(np.linspace(0.8, 0.97, 20))}
    assert decide_against(claim, outcomes, smooth, 0.01)["decided_by"] == "parametric"


def test_the_study_on_a_population(tiny_population: Path, tmp_path: Path) -> None:
    from models.zoo import load_manifest

    model, config = load_model(tiny_population / "target")
    fset = create_method("transfer", steps=20, alpha=0.03).generate(
        model, 20, generator=torch.Generator().manual_seed(1),
        seeds=load_dataset("fashion-mnist", "test").take(200),
        target=target_metadata(tiny_population / "target", config))
    fset.save(tmp_path / "t.safetensors")
    fset = FingerprintSet.load(tmp_path / "t.safetensors")
    manifest = load_manifest(tiny_population)
    heldout = manifest.names("heldout-negative")
    report = false_claims(tiny_population, fset, accuser="target",
                          calibration=manifest.names("calibration-negative"), heldout=heldout,
                          architectures={n: "tinycnn" for n in [*heldout, "target"]},
                          null_size=5, registry=tmp_path / "c.json")
    labels = [s["null"] for s in report["strategies"]]
    assert labels == ["accuser-least-matching", "verifier"]  # one architecture: no cross-arch
    least, verifier = report["strategies"]
    assert least["null_models"] == 5 and verifier["null_models"] == 6
    assert least["null_rates"]["max"] <= verifier["null_rates"]["max"]
    for s in report["strategies"]:
        assert s["suspects"] == 3 and 0 <= s["accused"] <= 3
        assert s["interval_95"][0] <= s["accused_rate"] <= s["interval_95"][1]
    assert report["accuser_rate"] == 1.0
    assert report["commitment"]["committed_to"] == "target"
    with pytest.raises(UserError, match="null-size"):
        false_claims(tiny_population, fset, accuser="target",
                     calibration=manifest.names("calibration-negative"), heldout=heldout,
                     architectures={}, null_size=50)
