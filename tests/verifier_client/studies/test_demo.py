"""The demo end to end on a tiny repository: real server subprocess, real HTTP, verdict table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from models.errors import UserError
from verifier_client.cli import main
from verifier_client.studies.demo import demo_models


@pytest.fixture(scope="module")
def demo_repo(tiny_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``copy`` (the target as is), ``csrp`` (it behind CSRP), ``heldout-resnet20-01``."""
    repo = tmp_path_factory.mktemp("demo")
    shutil.copytree(tiny_repo / "target", repo / "copy")
    shutil.copytree(tiny_repo / "target", repo / "csrp")
    config = json.loads((repo / "csrp" / "config.json").read_text())
    config["preprocessing"] = {"name": "csrp", "sigma": 1.23, "p": 6}
    (repo / "csrp" / "config.json").write_text(json.dumps(config))
    shutil.copytree(tiny_repo / "indep-2", repo / "heldout-resnet20-01")
    return repo


def test_demo_verifies_every_served_model_and_prints_verdicts(
        demo_repo: Path, owner: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo.json"
    code = main(["demo", "--repository", str(demo_repo), "--fingerprints", str(owner["sets"]),
                 "--calibration", str(owner["calibration"]), "--eot-fingerprints",
                 str(owner["sets"]), "--eot-calibration", str(owner["front_calibration"]),
                 "--repeats", "3", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "csrp 1.23/6" in printed and "stolen (2/2)" in printed
    assert "EOT x3x3 (900)" in printed and "plain x3 (300)" in printed
    assert "family-wise alpha 0.01" in printed and "(Holm)" in printed
    summary: dict[str, Any] = json.loads(out.read_text())
    by_model = {report["model"]: report for report in summary["reports"]}
    assert list(by_model) == ["copy", "csrp", "heldout-resnet20-01"]  # DEMO_MODELS order
    assert {row["verdict"] for row in by_model["copy"]["methods"]} == {"stolen"}
    assert all(row["mr_mean"] == 1.0 for row in by_model["copy"]["methods"])
    assert all(row["repeats"] == 3 for r in by_model.values() for row in r["methods"])
    assert by_model["csrp"]["preprocessing"]["name"] == "csrp"
    assert by_model["csrp"]["adaptive"]["randomized"] and by_model["csrp"]["votes"] == 3
    assert not by_model["copy"]["adaptive"]["randomized"]


def test_demo_models_are_checked(demo_repo: Path) -> None:
    assert demo_models(demo_repo, None) == ["copy", "csrp", "heldout-resnet20-01"]
    with pytest.raises(UserError, match="no model"):
        demo_models(demo_repo, ["copy", "nope"])


def _report(model: str, role: str, rates: dict[str, float], randomized: bool) -> dict:
    methods = [{"method": m, "mr_mean": r, "verdict": "stolen" if r > 0.9 else "not_proven"}
               for m, r in rates.items()]
    verdict = "stolen" if any(r > 0.9 for r in rates.values()) else "not_proven"
    return {"model": model, "role": role, "methods": methods, "votes": 5,
            "repeats_requested": 10, "queries_used": 100, "preprocessing": None,
            "adaptive": {"randomized": randomized},
            "overall": {"verdict": verdict, "alpha": 0.01, "guarantee": "g",
                        "stolen_by": [m for m, r in rates.items() if r > 0.9]}}


def test_the_table_puts_each_rate_under_its_own_method(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Plain rows have more sets than EOT rows: each rate sits under its method's column, a set
    the row's path lacks is n/a, and long names and roles are printed whole."""
    from verifier_client.studies.demo import print_verdicts

    plain = _report("heldout-mobilenet-01", "heldout-negative",
                    {"akh": 0.61, "cae": 0.22, "vce": 0.33}, randomized=False)
    eot = _report("csrp-ft-strong", "positive", {"cae": 0.95, "vce": 0.44}, randomized=True)
    print_verdicts({"reports": [plain, eot], "seconds": 1.0})
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if "served model" in line)
    row = next(line for line in lines if line.lstrip().startswith("csrp-ft-strong"))
    assert "n/a" in row and row.index("n/a") < row.index("0.95 S") < row.index("0.44 -")
    assert abs(row.index("0.95 S") - header.index("cae")) <= 4  # under its own column
    assert any("heldout-mobilenet-01" in line and "innocent (held out)" in line
               for line in lines)
