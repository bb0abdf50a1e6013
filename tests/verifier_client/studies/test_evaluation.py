"""The paper-shaped evaluation on a tiny zoo: well-formed table, in-process == via-server for
deterministic rows and within sampling noise under CSRP."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from verifier_client.cli import main
from verifier_client.studies.evaluation import evaluate_zoo


@pytest.fixture(scope="module")
def tiny_zoo(tiny_repo: Path, owner: dict[str, Path],
             tmp_path_factory: pytest.TempPathFactory) -> Path:
    zoo = tmp_path_factory.mktemp("zoo")
    for source, name in (("target", "target"), ("target", "csrp"), ("indep-1", "indep-01"),
                         ("indep-2", "indep-02")):
        shutil.copytree(tiny_repo / source, zoo / name)
    config = json.loads((zoo / "csrp" / "config.json").read_text())
    config["preprocessing"] = {"name": "csrp", "sigma": 1.23, "p": 6}
    (zoo / "csrp" / "config.json").write_text(json.dumps(config))
    shutil.copytree(owner["sets"], zoo / "fingerprints")
    return zoo


def test_table_rows_and_agreement_between_in_process_and_server(tiny_zoo: Path) -> None:
    local = evaluate_zoo(tiny_zoo, repeats=8)
    remote = evaluate_zoo(tiny_zoo, repeats=8, via_server=True)
    assert [r["row"] for r in local["rows"]] == ["target", "independent", "CSRP only"]
    assert sorted(local["methods"]) == ["cae", "ipguard"]
    target, independent, csrp = local["rows"]
    assert all(v == 1.0 for v in target["rates"].values())
    assert independent["models"] == ["indep-01", "indep-02"]
    assert all(low <= high for low, high in independent["rates"].values())
    for mine, theirs in zip(local["rows"], remote["rows"], strict=True):
        for method in local["methods"]:
            if mine["row"] == "CSRP only":  # independent random draws on both sides
                assert abs(mine["rates"][method] - theirs["rates"][method]) < 0.15
            else:
                assert mine["rates"][method] == theirs["rates"][method]
    assert csrp["rates"]["ipguard"] < 1.0 or csrp["rates"]["cae"] < 1.0


def test_cli_writes_every_output(tiny_zoo: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--zoo", str(tiny_zoo), "--repeats", "2",
                 "--out", str(tmp_path)]) == 0
    assert "| target |" in capsys.readouterr().out
    for ext in ("json", "md", "csv", "png"):
        assert (tmp_path / f"evaluation.{ext}").stat().st_size > 0
    assert main(["evaluate", "--zoo", str(tmp_path / "nothing"), "--out", str(tmp_path)]) == 2
