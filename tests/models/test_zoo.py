"""The zoo builder: resumable steps, lineage, ONNX-only slimming (on tinycnn copies)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from models.repository import ONNX_FILE, WEIGHTS_FILE, load_config
from models.runtime import load_predictor
from models.zoo import ZOO_CSRP, build_zoo, onnx_only, steps


def test_step_order_puts_the_target_first_and_names_every_pirate():
    names = [name for name, _ in steps(3)]
    assert names[0] == "target"
    assert names[1:4] == ["indep-01", "indep-02", "indep-03"]
    assert {"copy", "int8", "prune-0.1", "prune-0.5", "ftal", "csrp", "csrp-ft",
            "rdg-ft", "rdg-ft-matched"} <= set(names)


def test_build_derives_pirates_skips_existing_and_slims(tmp_path: Path, tiny_repo: Path):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    shutil.copytree(tiny_repo / "target", zoo / "target")
    shutil.copytree(tiny_repo / "indep-1", zoo / "indep-01")
    record = build_zoo(zoo, independents=1, only=["target", "indep-01", "copy", "prune-0.1",
                                                  "csrp"])
    assert record["target"] == {"status": "existing"}
    assert record["indep-01"] == {"status": "existing"}
    assert {record[n]["status"] for n in ("copy", "prune-0.1", "csrp")} == {"built"}
    for name in ("copy", "prune-0.1", "csrp", "indep-01"):
        assert (zoo / name / ONNX_FILE).is_file()
        assert not (zoo / name / WEIGHTS_FILE).exists(), name
        load_predictor(zoo / name)  # loads ONNX-only
    assert (zoo / "target" / WEIGHTS_FILE).is_file()  # white-box for the owner
    csrp = load_config(zoo / "csrp")
    assert csrp.preprocessing == ZOO_CSRP
    assert csrp.lineage.parent == "target"
    assert load_config(zoo / "copy").lineage.modification == "copy"
    # a later partial build keeps the record of the steps it does not touch
    build_zoo(zoo, independents=1, only=["prune-0.5"])
    steps_record = json.loads((zoo / "BUILD.json").read_text())["steps"]
    assert steps_record["copy"] == record["copy"]
    assert steps_record["prune-0.5"]["status"] == "built"
    build = json.loads((zoo / "BUILD.json").read_text())
    assert build["csrp"] == ZOO_CSRP and build["independents"] == 1

    again = build_zoo(zoo, independents=1, only=["copy"])
    assert again["copy"] == record["copy"]  # skipped, the first build's record kept


def test_onnx_only_is_idempotent(tmp_path: Path, tiny_repo: Path):
    entry = tmp_path / "indep"
    shutil.copytree(tiny_repo / "indep-2", entry)
    onnx_only(entry)
    onnx_only(entry)
    assert sorted(p.name for p in entry.iterdir()) == ["config.json", ONNX_FILE]
