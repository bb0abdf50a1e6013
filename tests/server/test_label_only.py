"""Label-only: walk every response body and header of every route (successes and errors) and
find no number that could be a score, logit or probability. The only floats allowed are the
preprocessing parameters in model metadata (sigma); /metrics carries timings and counts only."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from tests.server.conftest import (
    RunningServer,
    binary_request,
    json_request,
    png_bytes,
    to_uint8_nhwc,
)

FLOAT_TOKEN = re.compile(r"(?<![\w.])-?\d+\.\d+(?:[eE][-+]?\d+)?(?![\w.])"
                         r"|(?<![\w.])\d+[eE][-+]?\d+(?![\w.])|\bnan\b|\binfinity\b", re.I)
SUSPICIOUS_KEY = re.compile(r"score|logit|prob|confidence|softmax", re.I)
ALLOWED_FLOAT_PATHS = (("parameters", "preprocessing"),)
METRIC_FAMILIES = re.compile(r"^(inference_(request|request_failure|count|batch_count)_total"
                             r"|inference_(batch_size|queue_duration_seconds|"
                             r"preprocess_duration_seconds|compute_duration_seconds|"
                             r"request_duration_seconds)_(bucket|count|sum)"
                             r"|inference_queue_depth|model_ready)$")


def _walk(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            assert not SUSPICIOUS_KEY.search(str(key)), (path, key)
            yield from _walk(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, (*path, index))
    else:
        yield path, value


def _allowed(path: tuple) -> bool:
    return any(path[:len(prefix)] == prefix for prefix in ALLOWED_FLOAT_PATHS)


def check_json(document: Any, where: str) -> None:
    for path, value in _walk(document):
        if isinstance(value, float):
            assert _allowed(path), f"{where}: float {value} at {path}"
        elif isinstance(value, str):
            assert not FLOAT_TOKEN.search(value) or _allowed(path), \
                f"{where}: float-like text {value!r} at {path}"


def check_response(response: httpx.Response, num_classes: int = 10) -> None:
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
    for key, value in response.headers.items():
        assert not SUSPICIOUS_KEY.search(key), f"{where}: header {key}"
        assert not FLOAT_TOKEN.search(value), f"{where}: header {key}: {value}"
    content_type = response.headers.get("content-type", "")
    if response.request.url.path == "/metrics":
        for line in response.text.splitlines():
            if line and not line.startswith("#"):
                family = line.split("{", 1)[0].split(" ", 1)[0]
                assert METRIC_FAMILIES.match(family), f"{where}: metric {family}"
        return
    if content_type.startswith("application/octet-stream"):
        length = int(response.headers["inference-header-content-length"])
        head = json.loads(response.content[:length])
        check_json(head, where)
        labels = np.frombuffer(response.content[length:], dtype="<i8")
        assert len(response.content) - length == 8 * head["outputs"][0]["shape"][0]
        assert ((labels >= 0) & (labels < num_classes)).all()
        return
    if content_type.startswith("application/json"):
        document = response.json()
        check_json(document, where)
        if response.status_code >= 400:
            assert set(document) <= {"error", "ready", "name"} and "error" in document
        return
    assert content_type.startswith("text/html"), where  # /docs only
    assert not re.search(r"score|logit|probabilit", response.text, re.I)


def _requests(images: np.ndarray) -> list[dict[str, Any]]:
    body, headers = binary_request(images, parameters={"binary_data_output": True})
    png = png_bytes(images[0])
    infer = "/v2/models/target/infer"
    return [
        {"method": "GET", "url": "/v2/health/live"},
        {"method": "GET", "url": "/v2/health/ready"},
        {"method": "GET", "url": "/v2"},
        {"method": "GET", "url": "/v2/models/target"},
        {"method": "GET", "url": "/v2/models/target-csrp"},
        {"method": "GET", "url": "/v2/models/target/versions/1"},
        {"method": "GET", "url": "/v2/models/target/ready"},
        {"method": "GET", "url": "/v2/models/target/versions/1/ready"},
        {"method": "POST", "url": infer, "json": json_request(images)},
        {"method": "POST", "url": infer, "json": json_request(
            np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / 255)
         | {"outputs": [{"name": "label"}]}},
        {"method": "POST", "url": infer, "content": body, "headers": headers},
        {"method": "POST", "url": "/v2/models/target-csrp/infer", "content": body,
         "headers": headers},
        {"method": "POST", "url": "/v2/models/target/versions/1/infer",
         "json": json_request(images)},
        {"method": "POST", "url": "/v1/models/target/classify",
         "files": [("files", ("a.png", png, "image/png"))]},
        {"method": "GET", "url": "/metrics"},
        {"method": "GET", "url": "/openapi.json"},
        {"method": "GET", "url": "/docs"},
        # errors on every route
        {"method": "GET", "url": "/v2/models/nope"},
        {"method": "GET", "url": "/v2/models/Bad"},
        {"method": "GET", "url": "/v2/models/nope/ready"},
        {"method": "GET", "url": "/v2/models/target/versions/9"},
        {"method": "POST", "url": infer, "content": b"{"},
        {"method": "POST", "url": infer, "json": json_request(images) | {"outputs": [
            {"name": "label", "parameters": {"classification": 3}}]}},
        {"method": "POST", "url": infer, "json": {"inputs": [{
            "name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32",
            "data": [0.123456] * 783 + [1.5]}]}},
        {"method": "POST", "url": infer, "json": json_request(images) | {"outputs": [
            {"name": "probabilities"}]}},
        {"method": "POST", "url": "/v1/models/target/classify",
         "files": [("files", ("a.png", b"junk", "image/png"))]},
        {"method": "POST", "url": "/v2/health/live"},
        {"method": "GET", "url": "/nothing"},
    ]


@pytest.fixture(scope="module")
def responses(server: RunningServer, test_images) -> list[httpx.Response]:
    images = to_uint8_nhwc(test_images[:6])
    with server.client() as client:
        return [client.request(**request) for request in _requests(images)]


def test_every_route_is_label_only(responses: list[httpx.Response]) -> None:
    assert len(responses) == len(_requests(np.zeros((1, 28, 28, 1), np.uint8)))
    for response in responses:
        check_response(response)


def test_infer_outputs_are_int64_labels_only(responses: list[httpx.Response]) -> None:
    for response in responses:
        if (response.request.url.path.endswith("/infer") and response.status_code == 200
                and response.headers["content-type"] == "application/json"):
            outputs = response.json()["outputs"]
            assert [o["name"] for o in outputs] == ["label"]
            assert outputs[0]["datatype"] == "INT64"
            assert all(type(v) is int and 0 <= v < 10 for v in outputs[0]["data"])


def test_checker_catches_scores() -> None:
    """The walker itself: a score anywhere would be found."""
    with pytest.raises(AssertionError):
        check_json({"outputs": [{"data": [0.93]}]}, "x")
    with pytest.raises(AssertionError):
        check_json({"error": "confidence 0.93 too low"}, "x")
    with pytest.raises(AssertionError):
        check_json({"probabilities": [1]}, "x")
    check_json({"version": "0.1.0", "parameters": {"preprocessing": {"sigma": 1.16}}}, "x")
