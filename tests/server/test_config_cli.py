"""Configuration fails fast with one line; the real ``python -m server`` serves and stops."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch

from models.repository import CONFIG_FILE, ONNX_FILE
from server.cli import main
from server.core.config import Settings
from tests.server.conftest import free_port


def _fails(capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert expected in err, err


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("CSRP_SERVER_"):
            monkeypatch.delenv(key)


def test_bad_configuration_is_one_line(capsys, serve_repo: Path, tmp_path: Path) -> None:
    repo = str(serve_repo)
    _fails(capsys, [], "repository: required")
    _fails(capsys, ["--repository", str(tmp_path / "missing")], "model repository folder not")
    _fails(capsys, ["--repository", str(tmp_path)], "no model entries")
    _fails(capsys, ["--repository", repo, "--models", "target,ghost"], "unknown model(s) ghost")
    _fails(capsys, ["--repository", repo, "--models", "../etc"], "invalid model name")
    _fails(capsys, ["--repository", repo, "--device", "tpu"], "bad device 'tpu'")
    _fails(capsys, ["--repository", repo, "--backend", "tensorrt"], "backend")
    _fails(capsys, ["--repository", repo, "--max-batch-size", "0"], "max_batch_size")
    _fails(capsys, ["--repository", repo, "--port", "70000"], "port")
    if not torch.cuda.is_available():
        _fails(capsys, ["--repository", repo, "--device", "cuda"], "CUDA is not available")


def test_environment_variables(capsys, monkeypatch, serve_repo: Path) -> None:
    monkeypatch.setenv("CSRP_SERVER_REPOSITORY", str(serve_repo))
    monkeypatch.setenv("CSRP_SERVER_MODELS", "target-csrp, target")
    monkeypatch.setenv("CSRP_SERVER_MAX_QUEUE_DELAY_MS", "0")
    monkeypatch.setenv("CSRP_SERVER_SEED", "7")
    settings = Settings()
    assert settings.models == ("target-csrp", "target") and settings.seed == 7
    assert settings.max_queue_delay_ms == 0 and settings.model_names == ["target-csrp", "target"]
    assert Settings(max_batch_size=8).max_batch_size == 8  # arguments win over env
    monkeypatch.setenv("CSRP_SERVER_MAX_BATCH_SIZE", "lots")
    _fails(capsys, [], "max_batch_size")


def test_missing_backend_file_and_bad_preprocessing(capsys, serve_repo: Path,
                                                    tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(serve_repo / "target", repo / "onnx-only")
    (repo / "onnx-only" / "model.safetensors").unlink()
    config = json.loads((repo / "onnx-only" / CONFIG_FILE).read_text())
    (repo / "onnx-only" / CONFIG_FILE).write_text(json.dumps(config | {"name": "onnx-only"}))
    _fails(capsys, ["--repository", str(repo), "--backend", "torch"], "needs model.safetensors")
    shutil.copytree(serve_repo / "target", repo / "odd")
    (repo / "odd" / CONFIG_FILE).write_text(json.dumps(
        config | {"name": "odd", "preprocessing": {"name": "blur"}}))
    # rejected by the config's own validation or by build_transform, either way one line
    _fails(capsys, ["--repository", str(repo), "--models", "odd"], "preprocessing")


def _spawn(args: list[str]) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSRP_SERVER_")}
    return subprocess.Popen([sys.executable, "-m", "server", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_python_m_server_serves_and_stops_cleanly(serve_repo: Path) -> None:
    port = free_port()
    process = _spawn(["--repository", str(serve_repo), "--models", "target", "--port",
                      str(port), "--seed", "0", "--max-batch-size", "8", "--log-level",
                      "warning"])
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server not ready in time"
            time.sleep(0.2)
        meta = httpx.get(f"http://127.0.0.1:{port}/v2/models/target").json()
        assert meta["parameters"]["max_batch_size"] == 8
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_model_that_fails_to_load_exits_non_zero(serve_repo: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(serve_repo / "target", repo / "broken")
    config = json.loads((repo / "broken" / CONFIG_FILE).read_text())
    (repo / "broken" / CONFIG_FILE).write_text(json.dumps(config | {"name": "broken"}))
    # a well-formed graph that ONNX Runtime cannot run: found when loading, not when planning
    import onnx

    proto = onnx.load(str(repo / "broken" / ONNX_FILE))
    proto.graph.node[0].op_type = "NoSuchOperator"
    onnx.save(proto, str(repo / "broken" / ONNX_FILE))
    process = _spawn(["--repository", str(repo), "--port", str(free_port()), "--backend",
                      "onnx"])
    try:
        output, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, output
    assert output.strip().splitlines()[-1].startswith("error: model 'broken' failed to load")
