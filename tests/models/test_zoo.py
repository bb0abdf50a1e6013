"""The zoo builder: the plan, resumable steps, lineage, ONNX-only slimming, the population
manifest, failures reported and skipped, and a build on a local Ray cluster (tinycnn)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from models.config import DETECTOR_FILE
from models.errors import UserError
from models.repository import ONNX_FILE, WEIGHTS_FILE, load_config
from models.runtime import load_predictor
from models.zoo import (
    ZOO_CSRP,
    DataSpec,
    PlanEntry,
    build_zoo,
    default_plan,
    load_manifest,
    onnx_only,
)


def test_step_order_puts_the_target_first_and_names_every_pirate():
    names = [entry.name for entry in default_plan(3)]
    assert names[0] == "target"
    assert names[1:4] == ["indep-01", "indep-02", "indep-03"]
    assert {"copy", "int8", "prune-0.1", "prune-0.5", "ftal", "csrp", "csrp-ft",
            "rdg-ft", "rdg-ft-matched"} <= set(names)


def test_build_derives_pirates_skips_existing_and_slims(tmp_path: Path, tiny_repo: Path):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    shutil.copytree(tiny_repo / "target", zoo / "target")
    shutil.copytree(tiny_repo / "indep-1", zoo / "indep-01")
    record = build_zoo(zoo, 1, only=["target", "indep-01", "copy", "prune-0.1",
                                                  "csrp", "detector"])
    assert record["target"]["status"] == "existing"
    assert record["indep-01"]["status"] == "existing"
    assert {record[n]["status"] for n in ("copy", "prune-0.1", "csrp", "detector")} \
        == {"built"}
    assert (zoo / "detector" / DETECTOR_FILE).is_file()  # slimming keeps the detector
    assert load_config(zoo / "detector").detector is not None
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
    build_zoo(zoo, 1, only=["prune-0.5"])
    steps_record = json.loads((zoo / "BUILD.json").read_text())["steps"]
    assert steps_record["copy"] == record["copy"]
    assert steps_record["prune-0.5"]["status"] == "built"
    build = json.loads((zoo / "BUILD.json").read_text())
    assert build["csrp"] == ZOO_CSRP and build["calibration_negatives"] == 1

    again = build_zoo(zoo, 1, only=["copy"])
    assert again["copy"] == record["copy"]  # skipped, the first build's record kept


def test_onnx_only_is_idempotent(tmp_path: Path, tiny_repo: Path):
    entry = tmp_path / "indep"
    shutil.copytree(tiny_repo / "indep-2", entry)
    onnx_only(entry)
    onnx_only(entry)
    assert sorted(p.name for p in entry.iterdir()) == ["config.json", ONNX_FILE]


def test_the_default_population_meets_its_quota():
    plan = default_plan()
    roles = [e.role for e in plan]
    assert roles.count("calibration-negative") >= 20 and roles.count("heldout-negative") >= 16
    positives = [e for e in plan if e.role == "positive"]
    assert len(positives) >= 25 and len({e.category for e in positives}) >= 8
    heldout_arches = {e.arch for e in plan if e.role == "heldout-negative"}
    assert heldout_arches == {"resnet20", "vgg16_025", "mobilenet_025"}
    students = [e for e in positives if e.category.startswith("distillation-")]
    assert len(students) >= 3 and any(e.arch != "resnet20" for e in students)
    names = [e.name for e in plan]
    assert len(set(names)) == len(names)
    for index, entry in enumerate(plan):  # parents come first
        assert entry.parent is None or entry.parent in names[:index]


def _tiny_plan() -> list[PlanEntry]:
    return [PlanEntry("target", "target", "train", "target", arch="tinycnn", seed=3,
                      params={"epochs": 1}),
            PlanEntry("copy", "positive", "copy", "unmodified", parent="target"),
            PlanEntry("broken", "positive", "prune", "pruning", parent="target",
                      params={"rate": 2.0}),
            PlanEntry("broken-child", "positive", "copy", "unmodified", parent="broken")]


TINY_DATA = DataSpec(train_fraction=0.02, test_samples=300)


def test_a_failed_entry_is_reported_and_skipped(tmp_path: Path):
    zoo = tmp_path / "zoo"
    records = build_zoo(zoo, plan=_tiny_plan(), data=TINY_DATA)
    assert records["target"]["status"] == "built" and records["copy"]["status"] == "built"
    assert records["broken"]["status"] == "failed"
    assert "pruning rate must be in" in records["broken"]["error"]
    assert records["broken-child"] == {"kind": "copy", "role": "positive", "status": "skipped",
                                       "reason": "parent broken failed"}
    assert not (zoo / "broken").exists() and not (zoo / "broken-child").exists()
    assert [p.name for p in zoo.iterdir() if p.name.startswith(".")] == []  # no temp folders
    manifest = load_manifest(zoo)
    assert [e["name"] for e in manifest.entries] == ["target", "copy"]
    assert manifest.names("positive") == ["copy"] and manifest.categories() == {
        "unmodified": ["copy"]}
    with pytest.raises(UserError, match="no entry has the role 'heldout-negative'"):
        manifest.names("heldout-negative")
    again = build_zoo(zoo, plan=_tiny_plan()[:2], data=TINY_DATA)
    assert again == {name: records[name] for name in ("target", "copy")}  # nothing rebuilt


def test_manifest_problems_are_one_line(tmp_path: Path):
    zoo = tmp_path / "zoo"
    build_zoo(zoo, plan=_tiny_plan()[:2], data=TINY_DATA)
    document = json.loads((zoo / "population.json").read_text())
    cases = [({**document, "entries": [*document["entries"], {**document["entries"][1],
                                                              "name": "gone"}]},
              "entry 'gone' is missing"),
             ({**document, "entries": [{**document["entries"][1], "role": "suspect"}]},
              "unknown role 'suspect'"),
             ({**document, "format": "other"}, "not a csrp-testbed/population/v1 manifest")]
    for broken, message in cases:
        (zoo / "population.json").write_text(json.dumps(broken))
        with pytest.raises(UserError, match=message):
            load_manifest(zoo)


def test_two_entries_build_on_a_local_ray_cluster(tmp_path: Path):
    ray = pytest.importorskip("ray")
    zoo = tmp_path / "zoo"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        records = build_zoo(zoo, plan=_tiny_plan()[:2], executor="ray",
                            address=ray.get_runtime_context().gcs_address, data=TINY_DATA)
    finally:
        ray.shutdown()
    assert {n: r["status"] for n, r in records.items()} == {"target": "built", "copy": "built"}
    assert load_config(zoo / "copy").lineage.parent == "target"
    assert not (zoo / "copy" / WEIGHTS_FILE).exists()
    load_predictor(zoo / "copy")


def test_two_worker_processes_build_parents_first_and_record_each_entry(tmp_path: Path):
    zoo = tmp_path / "zoo"
    plan = [*_tiny_plan()[:2],
            PlanEntry("copy-of-copy", "positive", "copy", "unmodified", parent="copy"),
            PlanEntry("other", "heldout-negative", "train", "independent-disjoint",
                      arch="tinycnn", seed=4,
                      params={"epochs": 1, "exclude": "owner-private", "count": 1000,
                              "seed": 9001})]
    records = build_zoo(zoo, plan=plan, data=TINY_DATA, jobs=2)
    assert {n: r["status"] for n, r in records.items()} == {
        "target": "built", "copy": "built", "copy-of-copy": "built", "other": "built"}
    assert load_config(zoo / "copy-of-copy").lineage.parent == "copy"
    steps = json.loads((zoo / "BUILD.json").read_text())["steps"]
    assert set(steps) == set(records)
    other = load_config(zoo / "other").lineage.parameters
    # the owner's 1000 private points of the (tiny) training split are left out
    assert other["exclude"] == "owner-private" and other["train_fraction"] < 1.0


def test_split_off_is_seeded_and_disjoint():
    from models.datasets import load_dataset

    train = load_dataset("fashion-mnist", "train").take(5000)
    chosen, rest = train.split_off(100, 9001)
    again, _ = train.split_off(100, 9001)
    assert chosen.indices == again.indices and len(chosen) == 100 and len(rest) == 4900
    assert not set(chosen.indices) & set(rest.indices)


def test_the_grown_population_can_certify_one_percent():
    plan = default_plan()
    roles = [e.role for e in plan]
    assert roles.count("calibration-negative") >= 99  # a rank p-value reaches 0.01
    standard = [e for e in plan if e.role == "heldout-negative"
                and e.category != "independent-disjoint"]
    assert len(standard) >= 48
    assert sum(e.category == "independent-disjoint" for e in plan) >= 6
    students = [e for e in plan if e.category.startswith("distillation-")]
    assert {e.params["budget"] for e in students} >= {5_000, 20_000, 60_000}
