"""The fronts study: the accuracy search lands next to its target, detector fronts flag and
answer, AUCs and verdicts come out for every front, and a rerun reads the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.datasets import load_dataset
from models.errors import UserError
from models.runtime import load_predictor
from verifier_client.calibration import IndependentSource, calibrate, write_calibration
from verifier_client.fingerprint_set import load_sets
from verifier_client.studies.fronts import fronts_study, match_accuracy, to_markdown
from verifier_client.studies.stability import top1_draws
from verifier_client.studies.validation import Validation, VerificationPath


@pytest.mark.parametrize("name", ["noise", "median"])
def test_the_search_lands_next_to_the_target_accuracy(tiny_repo: Path, name: str) -> None:
    logits = load_predictor(tiny_repo / "target").logits
    test = load_dataset("fashion-mnist", "test").take(300)
    clean = top1_draws(logits, test, None, 1, 0)[0]
    goal = clean - 0.1
    spec, top1, trace = match_accuracy(logits, test, name, goal, seed=0)
    assert spec["name"] == name and trace
    assert abs(top1 - goal) == min(abs(t["top1"] - goal) for t in trace)  # the best probe
    if name == "noise":  # a continuous knob gets within the tolerance or the step budget
        assert abs(top1 - goal) < 0.03
    with pytest.raises(UserError, match="no strength knob"):
        match_accuracy(logits, test, "csrp", goal, seed=0)


def test_the_study_on_a_tiny_population(tiny_population: Path, tmp_path: Path) -> None:
    sets = load_sets([tiny_population / "fingerprints"])
    sources = [IndependentSource(n, path=tiny_population / n)
               for n in ("indep-01", "indep-02", "indep-03", "indep-04", "indep-05", "indep-06")]
    write_calibration(tmp_path / "cal.json", calibrate(sets, sources))
    from verifier_client.calibration import load_calibration

    validation = Validation(VerificationPath.load("plain", sets,
                                                  load_calibration(tmp_path / "cal.json")),
                            None, decide_by="parametric", alpha=0.05)
    seen: list[str] = []
    kwargs = dict(positives=["copy", "prune-0.3"], innocents=["heldout-01", "heldout-02"],
                  validation=validation, transforms=["median", "noise"], repeats=2,
                  samples=200, acc_repeats=1, cache=tmp_path / "cache")
    report = fronts_study(tiny_population, sets, on_model=seen.append, **kwargs)
    labels = [row["front"] for row in report["fronts"]]
    assert labels == ["none", "CSRP", "median", "noise", "detector", "detector + CSRP"]
    for row in report["fronts"]:
        assert set(row["methods"]) == {"vce", "ipguard"}
        for numbers in row["methods"].values():
            assert 0 <= numbers["auc"] <= 1 and 0 <= numbers["copy"] <= 1
            if row["detector"]:
                assert 0 <= numbers["flagged_on_copy"] <= 1
    verdicts = {row["front"]: row["verdict"]["verdict"] for row in report["fronts"]}
    assert verdicts["none"] == "stolen" and verdicts["median"] in ("stolen", "not_proven",
                                                                  "inconclusive")
    assert verdicts["CSRP"] == "refused"  # randomized, and no front-matched calibration given
    assert verdicts["detector"] == "not measured"  # the tiny zoo has no detector entry
    assert "| median | kernel_size=" in to_markdown(report)
    measured = [s for s in seen if " behind " in s and not s.startswith("judged")]
    assert len(measured) == 6 * 5  # 6 fronts x (target, 2 positives, 2 innocents)
    judged = [s for s in seen if s.startswith("judged")]
    assert len(judged) == 4  # every front but the two detector fronts the tiny zoo lacks
    again: list[str] = []
    fronts_study(tiny_population, sets, on_model=again.append, **kwargs)
    assert not [s for s in again if " behind " in s and not s.startswith("judged")]
    assert json.dumps(report)  # JSON-ready
