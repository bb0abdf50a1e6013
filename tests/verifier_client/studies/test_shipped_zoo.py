"""The shipped zoo is whole and tells the paper's story: every entry loads with its lineage,
every set matches the target, the calibration fits the sets, and over a real server the plain
copy is caught while the CSRP + fine-tuning pirate escapes IPGuard."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.local_server import LocalServer
from models.repository import list_entries, load_config
from models.runtime import load_predictor
from verifier_client.calibration import load_calibration
from verifier_client.fingerprint_set import FingerprintSet, load_sets
from verifier_client.matching import matching_rates
from verifier_client.verification import verify

ZOO = Path(__file__).resolve().parents[3] / "zoo"
PIRATES = ("copy", "int8", "prune-0.1", "prune-0.5", "ftal", "csrp", "csrp-ft", "rdg-ft",
           "rdg-ft-matched")
METHODS = ("ipguard", "cae", "vce", "rce", "rce-gm", "rce-lt")

def fset_path(method: str) -> Path:
    return ZOO / "fingerprints" / f"{method}.safetensors"


pytestmark = pytest.mark.skipif(not (ZOO / "target").is_dir(), reason="zoo/ not present")


def test_every_entry_loads_and_records_its_lineage() -> None:
    names = list_entries(ZOO)
    assert {"target", *PIRATES} <= set(names)
    assert len([n for n in names if n.startswith("indep-")]) >= 10
    for name in names:
        config = load_config(ZOO / name)
        # a student of Knockoff-style natural-photograph queries is a weak pirate (0.30 on
        # Fashion-MNIST), still three times chance; every other entry is a working classifier
        floor = 0.25 if config.lineage.parameters.get("queries") == "ood" else 0.8
        assert config.lineage.code_version and config.metrics["test_top1"] > floor, name
        if name in PIRATES:
            assert config.lineage.parent == "target", name
        load_predictor(ZOO / name)
    assert load_config(ZOO / "csrp").preprocessing == {"name": "csrp", "sigma": 1.23, "p": 6}


def test_matched_rdg_costs_what_csrp_costs_before_fine_tuning() -> None:
    """rdg-ft-matched's RDG limit was chosen so that, data-free, it costs the target as much
    top-1 as the zoo's CSRP (both measured on the full test set when the entries were built)."""
    csrp = load_config(ZOO / "csrp").metrics["transform_top1"]
    matched = load_config(ZOO / "rdg-ft-matched")
    assert matched.preprocessing == {"name": "rdg", "distort_limit": 0.713, "num_cells": 10}
    assert abs(matched.metrics["parent_transform_top1"] - csrp) < 0.01
    # and after the same fine-tuning CSRP has won back more than RDG
    assert (load_config(ZOO / "csrp-ft").metrics["transform_top1"]
            > matched.metrics["transform_top1"] + 0.03)


@pytest.mark.parametrize("method", METHODS)
def test_each_set_matches_the_target_and_the_calibration_knows_it(method: str) -> None:
    fset = FingerprintSet.load(fset_path(method))
    assert len(fset) == 100 and fset.metadata["method"] == method
    assert matching_rates(load_predictor(ZOO / "target"), fset).mean == 1.0
    entry = load_calibration(ZOO / "calibration.json")["methods"][method]
    assert len(entry["independent_rates"]) >= 10
    assert entry["set_sha256"] == load_sets([fset_path(method)])[0].sha256


def test_csrp_pirate_escapes_plain_ipguard_and_its_null_must_see_the_front() -> None:
    """The paper's finding on the shipped zoo: behind CSRP with fine-tuning (csrp-ft) the plain
    IPGuard set matches no better than the best calibration negative, while the copy is caught
    over a real server. And round 3's: a randomized suspect cannot be judged against negatives
    measured without its front; verify refuses instead of giving a verdict."""
    from models.errors import UserError
    from models.transforms import build_transform

    sets = [s for s in load_sets([ZOO / "fingerprints"]) if s.method == "ipguard"]
    calibration = load_calibration(ZOO / "calibration.json")
    with LocalServer(ZOO, "--models", "copy,csrp-ft", "--seed", "0", threads=2) as server:
        copy = verify(server.url, "copy", sets, calibration, repeats=3)["methods"][0]
        with pytest.raises(UserError, match="randomized front"):
            verify(server.url, "csrp-ft", sets, calibration, repeats=3)
    assert copy["verdict"] == "stolen" and copy["mr_mean"] == 1.0
    pirate = load_predictor(ZOO / "csrp-ft")
    rate = matching_rates(pirate, sets[0], build_transform(pirate.config.preprocessing),
                          repeats=10).mean
    negatives = calibration["methods"]["ipguard"]["independent_rates"]
    assert rate < max(negatives) + 0.03  # no better than the best innocent (+1 sd of noise)
