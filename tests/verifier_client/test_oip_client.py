"""The Open Inference Protocol client against the real server (a ``python -m server`` subprocess
on 127.0.0.1), plus a hand-written ``httpx.MockTransport`` for what a healthy server never does:
429 / 503 bursts, float scores, wrong label counts, JSON-only servers, 413."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch

from models.local_server import LocalServer, free_port
from verifier_client.oip_client import (
    BadResponseError,
    InputMismatchError,
    ModelMetadata,
    ModelNotFoundError,
    OIPClient,
    QueryFailedError,
    RetryPolicy,
    ServerUnreachableError,
    TensorSpec,
    choose_input,
    parse_retry_after,
)

ROOT = Path(__file__).resolve().parents[2]
FAST_RETRY = RetryPolicy(attempts=3, backoff_s=0.01, max_backoff_s=0.05)


# ---------------------------------------------------------------------------- a real server


@pytest.fixture(scope="module")
def server(tiny_repo: Path) -> Any:
    running = LocalServer(tiny_repo, "--models", "target", "--max-batch-size", "16",
                            "--seed", "0").start()
    yield running
    running.stop()


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


@pytest.fixture(scope="module")
def clean_images(fmnist_test: Any) -> torch.Tensor:
    return fmnist_test.floats(slice(0, 50))


def test_metadata_discovery_prefers_uint8_nhwc(server: LocalServer) -> None:
    async def go() -> ModelMetadata:
        async with OIPClient(server.url) as client:
            await client.check_ready()
            return await client.model_metadata("target")

    meta = run(go())
    assert meta.max_batch_size == 16
    plan = choose_input(meta, (1, 28, 28))
    assert (plan.name, plan.datatype, plan.layout) == ("images", "UINT8", "NHWC")


@pytest.mark.parametrize("protocol", ["binary", "json", "auto"])
def test_labels_equal_the_in_process_model(server: LocalServer, tiny_repo: Path,
                                           clean_images: torch.Tensor, protocol: str) -> None:
    from models.runtime import load_predictor

    expected = load_predictor(tiny_repo / "target").predict(clean_images).numpy()

    async def go() -> tuple[np.ndarray, str, int]:
        # batch 100 > the server's 16: the client reads parameters.max_batch_size and splits
        async with OIPClient(server.url, batch_size=100, protocol=protocol) as client:
            labels = await client.infer("target", clean_images)
            return labels, client.protocol, client.requests_sent

    labels, used, requests = run(go())
    assert labels.dtype == np.int64 and labels.tolist() == expected.tolist()
    assert used == ("json" if protocol == "json" else "binary")
    assert requests == 1 + 4  # metadata + ceil(50 / 16) inference requests


def test_a_batch_over_the_server_limit_is_split(server: LocalServer,
                                                clean_images: torch.Tensor) -> None:
    async def go() -> tuple[np.ndarray, int]:
        async with OIPClient(server.url, batch_size=50) as client:
            meta = await client.model_metadata("target")
            blind = ModelMetadata(meta.name, meta.inputs, meta.outputs)  # no max_batch_size
            labels = await client.infer_prepared(client.prepare(blind, clean_images))
            return labels, client.requests_sent

    labels, requests = run(go())
    assert labels.shape == (50,)
    assert requests > 2  # 50 refused (400: exceeds max batch) -> halves -> quarters


def test_unknown_model_and_input_mismatch(server: LocalServer) -> None:
    async def unknown() -> None:
        async with OIPClient(server.url) as client:
            await client.model_metadata("nope")

    with pytest.raises(ModelNotFoundError, match="model 'nope' not found"):
        run(unknown())

    async def mismatch() -> None:
        async with OIPClient(server.url) as client:
            await client.infer("target", np.zeros((2, 3, 32, 32), np.float32))

    with pytest.raises(InputMismatchError, match="does not fit images of C x H x W = 3x32x32"):
        run(mismatch())


def test_unreachable_server_is_one_clear_error() -> None:
    async def go() -> None:
        async with OIPClient(f"http://127.0.0.1:{free_port()}", retry=FAST_RETRY) as client:
            await client.check_ready()

    with pytest.raises(ServerUnreachableError, match="cannot reach an inference server"):
        run(go())


# ---------------------------------------------------------------------------- mock transport

META = ModelMetadata("m", (TensorSpec("images", "UINT8", (-1, 4, 4, 1)),),
                     (TensorSpec("label", "INT64", (-1,)),))
IMAGES = np.arange(3 * 16, dtype=np.float32).reshape(3, 1, 4, 4) / 255.0


def labels_json(labels: list[Any], datatype: str = "INT64", shape: list[int] | None = None
                ) -> httpx.Response:
    return httpx.Response(200, json={"model_name": "m", "outputs": [
        {"name": "label", "datatype": datatype, "shape": shape or [len(labels)],
         "data": labels}]})


def mock_client(handler: Any, **kwargs: Any) -> OIPClient:
    kwargs.setdefault("retry", FAST_RETRY)
    return OIPClient("http://mock", transport=httpx.MockTransport(handler), **kwargs)


def infer(client: OIPClient, images: np.ndarray = IMAGES) -> np.ndarray:
    async def go() -> np.ndarray:
        async with client:
            return await client.infer_prepared(client.prepare(META, images))

    return run(go())


def test_binary_request_body_is_the_uint8_nhwc_tensor() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return labels_json([0, 1, 2])

    assert infer(mock_client(handler)).tolist() == [0, 1, 2]
    request = seen[0]
    length = int(request.headers["Inference-Header-Content-Length"])
    header = json.loads(request.content[:length])
    assert header["inputs"][0] == {"name": "images", "shape": [3, 4, 4, 1], "datatype": "UINT8",
                                   "parameters": {"binary_data_size": 48}}
    assert request.content[length:] == bytes(range(48))


def test_429_with_retry_after_then_success(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    answers = iter([httpx.Response(429, headers={"Retry-After": "2"}, json={"error": "busy"}),
                    labels_json([4, 5, 6])])
    client = mock_client(lambda request: next(answers))
    assert infer(client).tolist() == [4, 5, 6]
    assert sleeps == [2.0] and client.retries == 1  # Retry-After beats the 0.01 s backoff


def test_5xx_and_connection_errors_are_retried_then_reported() -> None:
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("refused", request=request)
        if calls["n"] == 2:
            return httpx.Response(503, json={"error": "overloaded"})
        return labels_json([1, 1, 1])

    assert infer(mock_client(flaky)).tolist() == [1, 1, 1]

    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="bad gateway")

    with pytest.raises(QueryFailedError, match=r"after 3 attempt\(s\): HTTP 502: bad gateway"):
        infer(mock_client(down))


@pytest.mark.parametrize(("answer", "match"), [
    (labels_json([[0.1] * 10] * 3, "FP32", [3, 10]),
     r"did not answer with 3 labels \(got 'label' FP32 \[3, 10\]\)"),
    (labels_json([1, 2]), r"did not answer with 3 labels \(got 'label' INT64 \[2\]\)"),
    (labels_json([1, 2], shape=[3]), r"did not answer with 3 labels \(got 2 values"),
    (labels_json([1.0, 2.0, 3.0], "INT64"), "not all 64-bit integers"),
    (httpx.Response(200, text="<html>"), "not Open Inference Protocol JSON"),
])
def test_non_label_answers_are_refused(answer: httpx.Response, match: str) -> None:
    with pytest.raises(BadResponseError, match=match):
        infer(mock_client(lambda request: answer))


def test_int32_and_binary_label_outputs_are_accepted() -> None:
    assert infer(mock_client(lambda r: labels_json([7, 8, 9], "INT32", [3, 1]))).tolist() == [
        7, 8, 9]
    head = json.dumps({"outputs": [{"name": "label", "datatype": "INT64", "shape": [3],
                                    "parameters": {"binary_data_size": 24}}]}).encode()
    binary = httpx.Response(200, content=head + np.array([3, 2, 1], "<i8").tobytes(),
                            headers={"Inference-Header-Content-Length": str(len(head))})
    assert infer(mock_client(lambda r: binary)).tolist() == [3, 2, 1]


def test_json_only_server_gets_json_after_one_refusal() -> None:
    kinds: list[str] = []

    def json_only(request: httpx.Request) -> httpx.Response:
        if "Inference-Header-Content-Length" in request.headers:
            kinds.append("binary")
            return httpx.Response(415, json={"error": "binary tensors not supported"})
        kinds.append("json")
        body = json.loads(request.content)
        assert body["inputs"][0]["data"] == list(range(48))
        return labels_json([0, 0, 0])

    client = mock_client(json_only)

    async def twice() -> None:
        async with client:
            prepared = client.prepare(META, IMAGES)
            await client.infer_prepared(prepared)
            await client.infer_prepared(prepared)

    run(twice())
    assert kinds == ["binary", "json", "json"] and client.protocol == "json"


def test_413_splits_the_batch() -> None:
    sizes: list[int] = []

    def small(request: httpx.Request) -> httpx.Response:
        length = int(request.headers["Inference-Header-Content-Length"])
        n = json.loads(request.content[:length])["inputs"][0]["shape"][0]
        sizes.append(n)
        return httpx.Response(413, json={"error": "too large"}) if n > 1 else labels_json([n])

    assert infer(mock_client(small)).tolist() == [1, 1, 1]
    assert sizes[0] == 3 and sorted(sizes[1:]) == [1, 1, 1, 2]


def test_choose_input_and_retry_helpers() -> None:
    both = ModelMetadata("m", (TensorSpec("x", "FP32", (-1, 3, 8, 8)),
                               TensorSpec("img", "UINT8", (-1, 8, 8, 3))), ())
    assert choose_input(both, (3, 8, 8)).name == "img"
    fp32 = ModelMetadata("m", (TensorSpec("x", "FP32", (-1, -1, -1, -1)),), ())
    assert choose_input(fp32, (3, 8, 8)).layout == "NCHW"
    with pytest.raises(InputMismatchError, match=r"takes input 'x' FP32 \[-1, 3, 8, 8\]"):
        choose_input(ModelMetadata("m", both.inputs[:1], ()), (1, 28, 28))
    policy = RetryPolicy(attempts=5, backoff_s=1.0, max_backoff_s=4.0, jitter=0.5)
    assert all(0.5 * min(4.0, 2.0**k) <= policy.delay(k) <= min(4.0, 2.0**k) for k in range(5))
    assert policy.delay(0, retry_after=100.0) == 30.0  # capped Retry-After
    assert parse_retry_after("3") == 3.0 and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
