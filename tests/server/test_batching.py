"""Dynamic batching: 64 concurrent clients, each with different images, each gets its own
right labels, and the server ran fewer batches than it got requests."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np

from models.runtime import load_predictor
from tests.server.conftest import binary_request, json_request, to_uint8_nhwc


def test_64_concurrent_clients_get_their_own_labels(server_factory, serve_repo,
                                                    fmnist_test) -> None:
    running = server_factory(repository=serve_repo, models="target", device="cpu",
                             max_queue_delay_ms=20, max_batch_size=64)
    images = fmnist_test.floats(slice(0, 160))
    expected = load_predictor(serve_repo / "target", "onnx").predict(images).numpy()
    # client k sends 1..4 images starting at a distinct offset; half JSON, half binary
    requests = []
    start = 0
    for k in range(64):
        count = 1 + k % 4
        requests.append((k, start, count))
        start = (start + count) % (len(images) - 4)

    async def client_call(client: httpx.AsyncClient, k: int, first: int, count: int):
        array = to_uint8_nhwc(images[first:first + count])
        if k % 2:
            body, headers = binary_request(array, request_id=str(k))
            response = await client.post("/v2/models/target/infer", content=body,
                                         headers=headers)
        else:
            response = await client.post("/v2/models/target/infer",
                                         json=json_request(array, id=str(k)))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["id"] == str(k)
        return body["outputs"][0]["data"]

    async def main() -> list[list[int]]:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=running.url, limits=limits,
                                     timeout=60) as client:
            return await asyncio.gather(*(client_call(client, *r) for r in requests))

    before = running.metrics()
    results = asyncio.run(main())
    for (_, first, count), labels in zip(requests, results, strict=True):
        assert labels == expected[first:first + count].tolist()
    after = running.metrics()
    key = '{model="target",version="1"}'
    requests_made = after[f"inference_request_total{key}"] - before[f"inference_request_total{key}"]
    batches = (after[f"inference_batch_count_total{key}"]
               - before[f"inference_batch_count_total{key}"])
    images_done = after[f"inference_count_total{key}"] - before[f"inference_count_total{key}"]
    assert requests_made == 64
    assert images_done == sum(count for _, _, count in requests)
    assert 1 <= batches < requests_made
    assert after[f"inference_batch_size_count{key}"] == after[f"inference_batch_count_total{key}"]
    assert np.isfinite(after[f"inference_queue_duration_seconds_sum{key}"])
