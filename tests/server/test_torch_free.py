"""The edge path: a server process in which ``import torch`` fails serves ONNX entries (plain
and CSRP) over real HTTP, with the same seeded answers as the in-process torch pipeline."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from models.runtime import load_predictor
from models.transforms import csrp
from tests.server.conftest import (
    CSRP_SPEC,
    binary_request,
    free_port,
    parse_binary_response,
    to_uint8_nhwc,
)

ROOT = Path(__file__).resolve().parents[2]
# torch (and torchvision) cannot be imported in the server process: any import raises
BLOCK_TORCH = ("import sys; sys.modules.update(torch=None, torchvision=None); "
               "from server.cli import main; sys.exit(main(sys.argv[1:]))")


def _start(repo: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", BLOCK_TORCH, "--repository", str(repo), "--port", str(port),
         "--device", "cpu", "--log-level", "warning", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"server exited: {output}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError("server did not become ready")


def _stop(process: subprocess.Popen[str]) -> str:
    process.terminate()
    out, _ = process.communicate(timeout=30)
    return out


def test_onnx_entries_serve_without_torch(serve_repo: Path, test_images: torch.Tensor) -> None:
    seed = 99
    process, url = _start(serve_repo, "--models", "target,target-csrp", "--seed", str(seed))
    try:
        body, headers = binary_request(to_uint8_nhwc(test_images),
                                       parameters={"binary_data_output": True})
        with httpx.Client(base_url=url, timeout=30) as client:
            meta = client.get("/v2/models/target-csrp").json()
            plain = parse_binary_response(client.post("/v2/models/target/infer", content=body,
                                                      headers=headers))[1]
            noisy = parse_binary_response(client.post("/v2/models/target-csrp/infer",
                                                      content=body, headers=headers))[1]
    finally:
        log = _stop(process)
    assert "Traceback" not in log, log
    assert meta["parameters"]["preprocessing_runs"] == "onnx-graph"
    predictor = load_predictor(serve_repo / "target", "onnx")
    np.testing.assert_array_equal(plain, predictor.predict(test_images).numpy())
    generator = torch.Generator().manual_seed(seed)
    expected = predictor.predict(csrp(test_images, CSRP_SPEC["sigma"], CSRP_SPEC["p"],
                                      generator=generator)).numpy()
    np.testing.assert_array_equal(noisy, expected)


def test_torch_backend_without_torch_is_one_clear_error(serve_repo: Path) -> None:
    """Asking for what needs torch where there is none fails at start-up, not per request."""
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH, "--repository", str(serve_repo), "--port",
         str(port), "--device", "cpu", "--backend", "torch", "--models", "target"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode != 0
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: model 'target': backend 'torch' needs torch"), line


@pytest.mark.parametrize("module", ["server.main", "server.pipeline.served_model",
                                    "server.protocol.codec", "server.pipeline.pipelines",
                                    "models.onnx_serving"])
def test_serving_modules_import_without_torch(module: str) -> None:
    code = f"import sys; sys.modules.update(torch=None); import {module}"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
