"""Real uvicorn servers on 127.0.0.1 (background thread, free port) over a small repository.

``serve_repo``: ``target`` (tinycnn copied from ``tiny_repo``) and ``target-csrp`` (the same
weights, config preprocessing ``{"name": "csrp", "sigma": 1.16, "p": 3}``).
"""

from __future__ import annotations

import io
import json
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
import uvicorn

from models.datasets import ImageData
from models.repository import CONFIG_FILE, load_config
from server.cli import uvicorn_config
from server.core.config import Settings
from server.main import create_app

CSRP_SPEC = {"name": "csrp", "sigma": 1.16, "p": 3}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    port: int
    settings: Settings
    server: uvicorn.Server
    thread: threading.Thread

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while time.monotonic() < deadline:
                if client.get("/v2/health/ready").status_code == 200:
                    return
                time.sleep(0.05)
        raise TimeoutError("server did not become ready")

    def metrics(self) -> dict[str, float]:
        """``{'name{labels}': value}`` from /metrics."""
        with self.client() as client:
            text = client.get("/metrics").text
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def failure_key(reason: str, model: str = "target") -> str:
    """The /metrics sample of a model's failures for ``reason`` (labels in exposition order)."""
    return f'inference_request_failure_total{{model="{model}",reason="{reason}",version="1"}}'


def start_server(wait_ready: bool = True, **overrides: Any) -> RunningServer:
    port = free_port()
    settings = Settings(**{"host": "127.0.0.1", "port": port, "log_level": "warning",
                           **overrides})
    server = uvicorn.Server(uvicorn_config(settings, create_app(settings)))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    running = RunningServer(f"http://127.0.0.1:{port}", port, settings, server, thread)
    if wait_ready:
        running.wait_ready()
    return running


@pytest.fixture(scope="session")
def serve_repo(tiny_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("serve-repo")
    shutil.copytree(tiny_repo / "target", repo / "target")
    shutil.copytree(tiny_repo / "target", repo / "target-csrp")
    config = load_config(repo / "target-csrp").model_copy(
        update={"name": "target-csrp", "preprocessing": CSRP_SPEC})
    (repo / "target-csrp" / CONFIG_FILE).write_text(config.model_dump_json(indent=2))
    return repo


@pytest.fixture
def server_factory() -> Iterator[Callable[..., RunningServer]]:
    """Start servers with custom settings; all are stopped at teardown."""
    started: list[RunningServer] = []

    def factory(**overrides: Any) -> RunningServer:
        running = start_server(**overrides)
        started.append(running)
        return running

    yield factory
    for running in started:
        running.stop()


@pytest.fixture(scope="module")
def server(serve_repo: Path) -> Iterator[RunningServer]:
    """The default server of a test module (seed 0, CPU, both models)."""
    running = start_server(repository=serve_repo, seed=0, device="cpu")
    yield running
    running.stop()


@pytest.fixture(scope="session")
def test_images(fmnist_test: ImageData) -> torch.Tensor:
    """64 Fashion-MNIST test images, float32 [64, 1, 28, 28] on the 8-bit grid."""
    return fmnist_test.floats(slice(0, 64))


# ---- request builders (by hand, per the Open Inference Protocol / Triton binary extension) ----


def to_uint8_nhwc(images: torch.Tensor) -> np.ndarray:
    return (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def json_request(array: np.ndarray, name: str | None = None, **extra: Any) -> dict[str, Any]:
    """A JSON ``$inference_request`` with flat row-major ``data`` (as tritonclient sends it)."""
    datatype = "UINT8" if array.dtype == np.uint8 else "FP32"
    name = name or ("images" if datatype == "UINT8" else "input")
    return {"inputs": [{"name": name, "shape": list(array.shape), "datatype": datatype,
                        "data": array.reshape(-1).tolist()}], **extra}


def binary_request(array: np.ndarray, outputs: list[dict] | None = None,
                   parameters: dict | None = None,
                   request_id: str | None = None) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a binary-extension request, laid out like tritonclient's."""
    datatype = "UINT8" if array.dtype == np.uint8 else "FP32"
    raw = np.ascontiguousarray(array, dtype=np.uint8 if datatype == "UINT8" else "<f4").tobytes()
    header: dict[str, Any] = {}
    if request_id is not None:
        header["id"] = request_id
    header["inputs"] = [{"name": "images" if datatype == "UINT8" else "input",
                         "shape": list(array.shape), "datatype": datatype,
                         "parameters": {"binary_data_size": len(raw)}}]
    if outputs is not None:
        header["outputs"] = outputs
    if parameters is not None:
        header["parameters"] = parameters
    head = json.dumps(header).encode()
    return head + raw, {"Inference-Header-Content-Length": str(len(head)),
                        "Content-Type": "application/octet-stream"}


def parse_binary_response(response: httpx.Response) -> tuple[dict[str, Any], np.ndarray]:
    length = int(response.headers["Inference-Header-Content-Length"])
    head = json.loads(response.content[:length])
    output = head["outputs"][0]
    size = output["parameters"]["binary_data_size"]
    data = response.content[length:]
    assert len(data) == size
    return head, np.frombuffer(data, dtype="<i8").reshape(output["shape"])


def png_bytes(image_hwc: np.ndarray, fmt: str = "PNG") -> bytes:
    from PIL import Image

    mode = "L" if image_hwc.shape[2] == 1 else "RGB"
    buffer = io.BytesIO()
    Image.fromarray(image_hwc.squeeze(2) if mode == "L" else image_hwc, mode).save(buffer, fmt)
    return buffer.getvalue()
