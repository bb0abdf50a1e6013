"""Error rates over a population (``verifier_client.studies.roc``, ``roc_study``, the ``roc``
command):
the statistics on hand-made numbers, the roles (thresholds never see held-out models), and the
command end to end on a tiny population."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from verifier_client.cli import main
from verifier_client.studies.population import load_outcomes
from verifier_client.studies.roc import auc, calibrated_threshold, method_report, rates, roc_points


def test_auc_is_the_mann_whitney_probability() -> None:
    assert auc([0.9, 0.8], [0.1, 0.2, 0.3]) == 1.0
    assert auc([0.1], [0.9]) == 0.0
    assert auc([0.5, 0.5], [0.5]) == 0.5  # ties count half
    assert auc([0.6, 0.2], [0.4]) == 0.5
    points = roc_points([0.9, 0.2], [0.4])
    assert points[0] == [0.0, 0.0] and points[-1] == [1.0, 1.0]


def test_conformal_threshold_and_its_floor() -> None:
    calibration = [i / 100 for i in range(100)]  # 0.00 .. 0.99
    five = calibrated_threshold(calibration, 0.05)
    assert five["rank"] == 96 and five["threshold"] == 0.95 and five["note"] is None
    twenty = [i / 20 for i in range(20)]
    one = calibrated_threshold(twenty, 0.01)  # ceil(0.99 * 21) = 21 > 20
    assert one["threshold"] == max(twenty) and one["guaranteed_fpr"] == round(1 / 21, 4)
    assert "cannot guarantee 0.01" in one["note"]


def test_thresholds_come_from_calibration_models_only() -> None:
    scores = {"c1": 0.2, "c2": 0.3, "c3": 0.4, "h1": 0.35, "h2": 0.1, "p1": 0.9, "p2": 0.38}
    categories = {"a": ["p1"], "b": ["p2"]}
    first = method_report(scores, ["c1", "c2", "c3"], ["h1", "h2"], categories, seed=0)
    moved = method_report({**scores, "h1": 0.99, "h2": 0.98}, ["c1", "c2", "c3"], ["h1", "h2"],
                          categories, seed=0)
    assert first["thresholds"] == moved["thresholds"]  # held-out scores never set a threshold
    assert first["groups"]["a"]["auc"] == 1.0 and moved["groups"]["a"]["auc"] == 0.0
    recalibrated = method_report({**scores, "c3": 0.95}, ["c1", "c2", "c3"], ["h1", "h2"],
                                 categories, seed=0)
    assert recalibrated["thresholds"] != first["thresholds"]


def test_heldout_kinds_separate_innocents_that_score_like_the_copy() -> None:
    """Innocents of one kind above the threshold (as Dataset Inference's critics predict for
    innocents trained on the owner's data) show as that kind's FPR and AUC, not the others'."""
    from verifier_client.studies.roc import heldout_kinds

    scores = {"c1": 0.2, "c2": 0.3, "c3": 0.4, "s1": 0.9, "s2": 0.95, "d1": 0.1, "d2": 0.15,
              "p1": 0.92, "p2": 0.8}
    thresholds = method_report(scores, ["c1", "c2", "c3"], ["s1", "s2", "d1", "d2"],
                               {"a": ["p1", "p2"]}, seed=0)["thresholds"]
    kinds = heldout_kinds(scores, thresholds, {"saw-private": ["s1", "s2"],
                                               "disjoint": ["d1", "d2"]}, ["p1", "p2"])
    assert kinds["saw-private"]["fpr"]["0.01"] == 1.0 and kinds["disjoint"]["fpr"]["0.01"] == 0.0
    assert kinds["disjoint"]["auc_all_positives"] == 1.0
    assert kinds["saw-private"]["auc_all_positives"] == 0.25  # p1 beats s1 only
    assert kinds["disjoint"]["models"] == 2 and kinds["disjoint"]["mean_score"] == 0.125


def test_rates_at_a_budget() -> None:
    outcomes = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=bool)
    assert rates(outcomes) == 3 / 8
    assert rates(outcomes, repeats=1) == 0.5
    assert rates(outcomes, np.array([0, 2])) == 0.5


def test_roc_command_on_a_tiny_population(tiny_population: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "roc"
    code = main(["roc", "--zoo", str(tiny_population), "--repeats", "3", "--quiet",
                 "--fingerprint-budgets", "5,30", "--repeat-budgets", "1,3", "--subsamples", "4",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "roc.json").read_text())
    manifest = json.loads((tiny_population / "population.json").read_text())
    assert report["roles"]["calibration-negative"] == [f"indep-{i:02d}" for i in range(1, 7)]
    assert report["roles"]["heldout-negative"] == ["heldout-01", "heldout-02", "heldout-03"]
    assert set(report["roles"]["positive"]) == {"unmodified", "pruning", "csrp-data-free",
                                                "csrp-fine-tuned"}
    assert len(report["manifest_sha256"]) == 64 and manifest["entries"]
    for method in ("vce", "ipguard"):
        data = report["methods"][method]
        assert data["scores"]["copy"] == 1.0  # the untouched copy matches every fingerprint
        assert data["groups"]["unmodified"]["auc"] == 1.0
        for group in data["groups"].values():
            assert 0.0 <= group["auc_ci95"][0] <= group["auc"] <= group["auc_ci95"][1] <= 1.0
        assert set(data["budgets"]["fingerprints"]["all"]) == {"5", "30"}
        assert [t["fpr"] for t in data["thresholds"]] == [0.01, 0.05]
        assert data["thresholds"][0]["guaranteed_fpr"] == round(1 / 7, 4)  # 6 models: 1/7
    outcomes = load_outcomes(out / "outcomes.npz")
    assert outcomes["csrp"]["vce"].shape == (3, 30)
    assert "ROC-AUC against the held-out negatives" in (out / "roc.md").read_text()
    for image in ("roc.png", "budget.png"):
        assert (out / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("argv", "message"), [
    (["--fingerprint-budgets", "31"], "fingerprint budget 31 is outside 1..30"),
    (["--fingerprint-budgets", "5", "--repeat-budgets", "5"],
     r"repeat budget 5 is outside 1..2 \(--repeats\)"),
])
def test_budgets_beyond_the_sets_are_one_line(tiny_population: Path, tmp_path: Path, capsys,
                                              argv: list[str], message: str) -> None:
    code = main(["roc", "--zoo", str(tiny_population), "--repeats", "2", "--quiet",
                 "--out", str(tmp_path / "x"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "x").exists()


def test_default_repeat_budgets_follow_the_repeats_measured(tiny_population: Path,
                                                           tmp_path: Path) -> None:
    """``--repeats 2`` without budgets runs (budgets 1 and 2), where the fixed default 1,5,20
    used to stop it with an error about a budget the user never set."""
    from verifier_client.commands.roc import default_repeat_budgets

    assert default_repeat_budgets(20) == [1, 5, 20]
    assert default_repeat_budgets(10) == [1, 5, 10]
    assert main(["roc", "--zoo", str(tiny_population), "--repeats", "2", "--quiet",
                 "--fingerprint-budgets", "5", "--subsamples", "2",
                 "--out", str(tmp_path / "x")]) == 0
    assert json.loads((tmp_path / "x" / "roc.json").read_text())["repeat_budgets"] == [1, 2]


def test_a_manifest_naming_a_missing_entry_is_one_line(tiny_population: Path, tmp_path: Path,
                                                        capsys) -> None:
    import shutil

    zoo = tmp_path / "zoo"
    shutil.copytree(tiny_population, zoo)
    shutil.rmtree(zoo / "heldout-02")
    code = main(["roc", "--zoo", str(zoo), "--quiet", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "entry 'heldout-02' is missing" in err and "\n" not in err


def test_validate_on_the_tiny_population(tiny_population: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped procedure out of sample: plain calibration for deterministic suspects,
    a front-matched one for randomized suspects; innocents as they are and behind CSRP,
    leave-one-out refits without the model; the cache makes a rerun identical."""
    sets = str(tiny_population / "fingerprints")
    plain, front = tmp_path / "plain.json", tmp_path / "front.json"
    assert main(["calibrate", "--fingerprints", sets, "--repository", str(tiny_population),
                 "--out", str(plain)]) == 0
    assert main(["calibrate", "--fingerprints", sets, "--repository", str(tiny_population),
                 "--front", "csrp(sigma=1.16..1.23, p=3)", "--votes", "3", "--repeats", "2",
                 "--out", str(front)]) == 0
    assert not (tmp_path / "front.json.partial").exists()  # removed once the file is written
    out = tmp_path / "validation"
    args = ["validate", "--zoo", str(tiny_population), "--calibration", str(plain),
            "--eot-fingerprints", sets, "--eot-calibration", str(front), "--alpha", "0.05",
            "--serve-behind", "none;csrp(sigma=1.2, p=3)", "--out", str(out)]
    code = main(args)
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "validation.json").read_text())
    groups = report["negatives"]
    assert list(groups) == ["heldout behind none", "leave-one-out behind none",
                            "heldout behind csrp(sigma=1.2, p=3)",
                            "leave-one-out behind csrp(sigma=1.2, p=3)"]
    assert groups["heldout behind none"]["count"] == 3
    assert groups["leave-one-out behind csrp(sigma=1.2, p=3)"]["count"] == 6
    behind = report["models"]["heldout behind csrp(sigma=1.2, p=3)"]
    assert {d["path"] for d in behind.values()} == {"eot"}  # randomized: front-matched path
    assert {d["path"] for d in report["models"]["heldout behind none"].values()} == {"plain"}
    assert report["positive_models"]["unmodified"]["copy"]["verdict"] == "stolen"
    assert report["positive_models"]["csrp-data-free"]["csrp"]["path"] == "eot"
    assert report["paths"]["eot"]["protocol"]["votes"] == 3
    for group in groups.values():
        low, high = group["false_accusation_interval"]
        assert low <= group["false_accusation_rate"] <= high
    markdown = (out / "validation.md").read_text()
    assert "Clopper-Pearson" in markdown and "csrp(sigma=1.2, p=3)" in markdown
    assert any((out / "cache").iterdir())
    assert main([*args[:-1], str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "validation.json").read_text())
    assert again["models"] == report["models"]  # seeded per model and front: replays


def test_exact_interval_says_what_a_few_models_can_show() -> None:
    from verifier_client.studies.validation import exact_interval

    low, high = exact_interval(0, 16)
    assert low == 0.0 and high == pytest.approx(1 - 0.025 ** (1 / 16))  # 0 of 16: up to 21%
    assert exact_interval(16, 16)[1] == 1.0 and exact_interval(8, 16)[0] > 0.2


def test_equal_operating_points_print_one_tpr_table() -> None:
    """With few calibration negatives the 1% and 5% thresholds coincide: the table is said
    once; when one method's 5% point differs, both tables are printed."""
    import copy

    from verifier_client.studies.roc_study import to_markdown

    shipped = Path(__file__).parents[3] / "results" / "roc" / "roc.json"
    report = json.loads(shipped.read_text())
    for entry in report["methods"].values():
        entry["heldout_fpr"]["0.05"] = entry["heldout_fpr"]["0.01"]
        for group in entry["groups"].values():
            group["tpr"]["0.05"] = group["tpr"]["0.01"]
    text = to_markdown(report)
    assert text.count("| held-out FPR |") == 1 and "the same table as at 1%" in text
    differs = copy.deepcopy(report)
    first = next(iter(differs["methods"].values()))
    first["heldout_fpr"]["0.05"] = 0.5
    text = to_markdown(differs)
    assert text.count("| held-out FPR |") == 2 and "the same table" not in text
