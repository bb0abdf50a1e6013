"""The pirate's defence sweep (``python -m models tune-defence``) on the tiny target."""

from __future__ import annotations

import json
from pathlib import Path

from models.cli import main
from models.runtime import load_predictor
from models.tune_defence import pareto


def test_pareto_front() -> None:
    points = [{"accuracy": 0.9, "best": {"k": 0.8}}, {"accuracy": 0.8, "best": {"k": 0.5}},
              {"accuracy": 0.7, "best": {"k": 0.6}}, {"accuracy": 0.9, "best": {"k": 0.9}}]
    assert pareto(points, "k") == [1, 0]  # 2 is worse than 1 on both; 3 worse than 0


def _suite(tmp_path: Path, tiny_repo: Path, fmnist_test) -> Path:
    from tests.verifier_client.test_calibration import make_set

    images = fmnist_test.floats(slice(300, 340))
    labels = load_predictor(tiny_repo / "target").predict(images)
    return make_set(tmp_path / "suite" / "clean.safetensors", images, labels, "clean")


def test_sweep_writes_the_front(tiny_repo: Path, fmnist_test, tmp_path: Path, capsys) -> None:
    suite = _suite(tmp_path, tiny_repo, fmnist_test)
    out = tmp_path / "out"
    code = main(["tune-defence", "--model", str(tiny_repo / "target"), "--transform", "csrp",
                 "--grid", "sigma=1.16,1.3", "--grid", "p=1,3,40", "--suite",
                 f"plain={suite.parent}", "--votes", "1,3", "--repeats", "2", "--samples",
                 "200", "--acc-repeats", "1", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "tune_defence.json").read_text())
    assert len(report["points"]) == 4 and len(report["skipped"]) == 2  # p=40 does not fit
    for key in ("plain, 1 vote", "plain, 3 votes"):
        front = [report["points"][i] for i in report["fronts"][key]]
        assert front and all(0 <= p["best"][key] <= 1 for p in front)
    assert (out / "tune_defence.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_input_is_one_line(tiny_repo: Path, tmp_path: Path, capsys) -> None:
    base = ["tune-defence", "--model", str(tiny_repo / "target"), "--out", str(tmp_path / "x")]
    for extra, message in ((["--transform", "blur", "--grid", "x=1", "--suite", "a=b"],
                            "unknown transform 'blur'"),
                           (["--transform", "csrp", "--suite", "a=b"], "at least one --grid"),
                           (["--transform", "csrp", "--grid", "sigma=1.2", "--grid", "q=1",
                             "--suite", f"a={tmp_path}"], "csrp has no option q"),
                           (["--transform", "csrp", "--grid", "sigma=x"], "is not a number")):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
