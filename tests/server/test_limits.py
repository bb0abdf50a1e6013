"""Limits and lifecycle: 413 with and without Content-Length, 503 when the queue is full,
readiness only after warm-up, live at once."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import numpy as np

from tests.server.conftest import binary_request, failure_key, json_request

INFER = "/v2/models/target/infer"
ONE = np.zeros((1, 28, 28, 1), np.uint8)
LIMIT_MB = 0.05  # 52,428 bytes


def _raw_http(port: int, head: bytes, body_chunks: list[bytes]) -> tuple[int, dict]:
    """Send a request by hand and read the answer (status, JSON body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        for chunk in body_chunks:
            try:
                sock.sendall(chunk)
            except OSError:
                break
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            part = sock.recv(65536)
            if not part:
                break
            data += part
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1])


def test_413_with_content_length(server_factory, serve_repo) -> None:
    running = server_factory(repository=serve_repo, models="target", max_body_mb=LIMIT_MB)
    with running.client() as client:
        big = client.post(INFER, content=b"x" * 200_000,
                          headers={"Content-Type": "application/json"})
        assert big.status_code == 413
        # the JSON limit is the smaller of --max-json-body-mb and --max-body-mb
        assert big.json() == {"error": "JSON request body larger than the server's limit of "
                                       "52428 bytes (send binary tensors for more)"}
        binary = client.post(INFER, content=b"x" * 200_000,
                             headers={"Content-Type": "application/octet-stream",
                                      "Inference-Header-Content-Length": "10"})
        assert binary.status_code == 413
        assert binary.json() == {"error": "request body larger than the server's limit of "
                                          "52428 bytes"}
        body, headers = binary_request(ONE)
        assert client.post(INFER, content=body, headers=headers).status_code == 200
    # a client that waits for 100-continue is refused before sending anything
    head = (f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n"
            "Expect: 100-continue\r\n\r\n").encode()
    status, answer = _raw_http(running.port, head, [])
    assert status == 413 and "error" in answer


def test_413_for_chunked_body_without_content_length(server_factory, serve_repo) -> None:
    running = server_factory(repository=serve_repo, models="target", max_body_mb=LIMIT_MB)
    head = (f"POST {INFER} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            "Content-Type: application/json\r\n\r\n").encode()
    chunk = b"x" * 8192
    chunks = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 10 + [b"0\r\n\r\n"]
    status, answer = _raw_http(running.port, head, chunks)
    assert status == 413 and "limit" in answer["error"]

    def stream():
        for _ in range(10):
            yield b"y" * 8192

    with running.client() as client:
        response = client.post(INFER, content=stream(),
                               headers={"Content-Type": "application/json"})
        assert response.status_code == 413
        assert client.get("/v2/health/ready").status_code == 200
    metrics = running.metrics()
    assert metrics[failure_key("too_large")] >= 2


def test_503_with_retry_after_when_queue_is_full(server_factory, serve_repo) -> None:
    running = server_factory(repository=serve_repo, models="target", max_batch_size=1,
                             max_queue_size=1, batch_sleep_ms=400)
    body, headers = binary_request(ONE)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            return await asyncio.gather(*(client.post(INFER, content=body, headers=headers)
                                          for _ in range(8)))

    responses = asyncio.run(burst())
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) >= 1 and statuses.count(503) >= 1, statuses
    assert set(statuses) <= {200, 503}
    for response in responses:
        if response.status_code == 503:
            assert response.headers["retry-after"] == "1"
            assert "queue full" in response.json()["error"]
    metrics = running.metrics()
    assert metrics[failure_key("overloaded")] >= 1
    with running.client() as client:
        assert client.post(INFER, content=body, headers=headers).status_code == 200


def test_ready_only_after_warm_up_live_at_once(server_factory, serve_repo) -> None:
    started = time.monotonic()
    running = server_factory(repository=serve_repo, models="target", warmup_delay_s=1.5,
                             wait_ready=False)
    with running.client() as client:
        assert client.get("/v2/health/live").json() == {"live": True}
        ready = client.get("/v2/health/ready")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        assert ready.headers["retry-after"] == "1"
        assert client.get("/v2/models/target/ready").status_code == 503
        assert client.get("/v2/models/target").status_code == 200  # metadata while loading
        early = client.post(INFER, json=json_request(ONE))
        assert early.status_code == 503 and "not ready" in early.json()["error"]
    running.wait_ready()
    assert time.monotonic() - started >= 1.5
    with running.client() as client:
        assert client.post(INFER, json=json_request(ONE)).status_code == 200
        assert client.get("/v2/models/target/ready").json() == {"name": "target",
                                                                 "ready": True}
    assert running.metrics()['model_ready{model="target",version="1"}'] == 1


def test_shutdown_stops_workers(server_factory, serve_repo) -> None:
    running = server_factory(repository=serve_repo, models="target")
    manager = running.server.config.app.state.manager
    worker = manager.models["target"].batcher._thread
    assert worker.is_alive()
    running.stop()
    assert not running.thread.is_alive()
    assert not worker.is_alive()
    assert not manager.models["target"].ready
