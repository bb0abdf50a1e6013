"""Load tests against a real server: closed and open loop, CSRP overhead, bad input
(``loadtest.runner`` through ``python -m verifier_client loadtest``)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.local_server import LocalServer
from verifier_client.cli import main


@pytest.fixture(scope="module")
def csrp_server(tiny_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    repo = tmp_path_factory.mktemp("loadtest-repo")
    shutil.copytree(tiny_repo / "target", repo / "target")
    shutil.copytree(tiny_repo / "target", repo / "target-csrp")
    config_path = repo / "target-csrp" / "config.json"
    config = json.loads(config_path.read_text())
    config.update(name="target-csrp", preprocessing={"name": "csrp", "sigma": 1.16, "p": 3})
    config_path.write_text(json.dumps(config))
    with LocalServer(repo, "--models", "target,target-csrp", "--backend", "onnx") as server:
        yield server.url


def test_closed_loop_report_with_csrp_overhead(csrp_server: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    code = main(["loadtest", "--url", csrp_server, "--model", "target-csrp", "--model", "target",
                 "--concurrency", "1,4", "--duration", "1", "--images-per-request", "2",
                 "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "loadtest.json").read_text())
    assert report["models"] == ["target-csrp", "target"]
    assert report["server_models"]["target-csrp"]["preprocessing"] == {
        "name": "csrp", "sigma": 1.16, "p": 3}
    assert report["server_models"]["target"]["preprocessing"] is None
    assert report["server_models"]["target"]["backend"] == "onnx"
    points = report["points"]
    assert sorted((p["model"], p["concurrency"]) for p in points) == [
        ("target", 1), ("target", 4), ("target-csrp", 1), ("target-csrp", 4)]
    for p in points:
        assert p["mode"] == "closed" and p["failed"] == 0 and p["errors"] == {}
        assert p["completed"] > 0 and p["completed"] == p["issued"]
        assert 0.9 <= p["elapsed_s"] < 30
        assert p["achieved_rps"] > 0 and p["achieved_ips"] == pytest.approx(
            2 * p["achieved_rps"], rel=0.01)
        lat = p["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        server = p["server"]
        assert server["requests"] == p["completed"]  # the /metrics delta saw exactly our load
        assert server["images"] == 2 * p["completed"]
        assert server["batches"] >= 1 and server["preprocess_ms_per_batch"] is not None
        assert server["infer_ms_per_batch"] > 0 and server["queue_ms_per_request"] >= 0
    rows = report["overhead"]
    assert [(r["minus"], r["concurrency"]) for r in rows] == [
        ("target-csrp - target", 1), ("target-csrp - target", 4)]
    assert all(r["throughput_ratio"] > 0 and r["preprocess_ms_per_batch"] is not None
               for r in rows)
    markdown = (out / "loadtest.md").read_text()
    assert "| model | load | offered req/s |" in markdown
    assert "## Preprocessing overhead (target-csrp against target" in markdown
    assert markdown.count("| target-csrp | c=") == 2
    assert (out / "loadtest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_open_loop_poisson(csrp_server: str, tmp_path: Path) -> None:
    code = main(["loadtest", "--url", csrp_server, "--model", "target", "--rate", "40",
                 "--poisson", "--duration", "0.5", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    report = json.loads((tmp_path / "loadtest.json").read_text())
    [point] = report["points"]
    assert point["mode"] == "open" and point["arrivals"] == "poisson" and point["rate"] == 40
    assert point["concurrency"] is None and report["overhead"] == []
    assert point["failed"] == 0 and point["completed"] == point["issued"] > 0
    assert point["offered_rps"] == pytest.approx(point["issued"] / 0.5)
    assert point["server"]["requests"] == point["completed"]


def test_unknown_model_is_one_line(csrp_server: str, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["loadtest", "--url", csrp_server, "--model", "nope", "--concurrency", "1",
                 "--duration", "0.2", "--out", str(tmp_path), "--quiet"])
    assert code == 2
    assert "model 'nope' not found" in capsys.readouterr().err
    assert not (tmp_path / "loadtest.json").exists()
