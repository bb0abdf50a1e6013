"""A corpus of malformed requests: every one is a 4xx with ``{"error": "..."}``, none a 500, and
the server stays healthy and correct afterwards."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from tests.server.conftest import (
    RunningServer,
    binary_request,
    failure_key,
    json_request,
    png_bytes,
)

INFER = "/v2/models/target/infer"
CLASSIFY = "/v1/models/target/classify"
ONE_U8 = np.zeros((1, 28, 28, 1), np.uint8)
ONE_F32 = np.zeros((1, 1, 28, 28), np.float32)


def _post_json(obj: Any, path: str = INFER, **headers: str) -> dict[str, Any]:
    return {"method": "POST", "url": path, "content": json.dumps(obj).encode(),
            "headers": {"Content-Type": "application/json", **headers}}


def _post_raw(body: bytes, path: str = INFER, **headers: str) -> dict[str, Any]:
    return {"method": "POST", "url": path, "content": body, "headers": headers}


def _with_input(**changes: Any) -> dict[str, Any]:
    request = json_request(ONE_U8)
    request["inputs"][0].update(changes)
    return _post_json(request)


def _binary(array: np.ndarray, cut: int = 0, extra: bytes = b"", header_delta: int = 0,
            size_delta: int = 0) -> dict[str, Any]:
    body, headers = binary_request(array)
    head_len = int(headers["Inference-Header-Content-Length"])
    if size_delta:
        head = json.loads(body[:head_len])
        head["inputs"][0]["parameters"]["binary_data_size"] += size_delta
        raw = body[head_len:]
        new_head = json.dumps(head).encode()
        body, head_len = new_head + raw, len(new_head)
    body = (body[:len(body) - cut] if cut else body) + extra
    return _post_raw(body, **{"Inference-Header-Content-Length": str(head_len + header_delta)})


def _f32_binary(values: list[float]) -> dict[str, Any]:
    array = np.zeros((1, 1, 28, 28), np.float32)
    array.reshape(-1)[:len(values)] = values
    return _binary(array)


def _form(files: list[tuple[str, tuple[str, bytes, str]]]) -> dict[str, Any]:
    return {"method": "POST", "url": CLASSIFY, "files": files}


PNG_28 = png_bytes(np.zeros((28, 28, 1), np.uint8))

CORPUS: dict[str, dict[str, Any]] = {
    # binary extension
    "truncated binary": _binary(ONE_U8, cut=100),
    "binary longer than declared": _binary(ONE_U8, extra=b"\0" * 8),
    "header length larger than body": _binary(ONE_U8, header_delta=10_000),
    "header length inside the JSON": _binary(ONE_U8, header_delta=-5),
    "header length not a number": _post_raw(b"{}", **{"Inference-Header-Content-Length": "x"}),
    "header length negative": _post_raw(b"{}", **{"Inference-Header-Content-Length": "-3"}),
    "raw binary (header length 0)": _post_raw(bytes(784),
                                              **{"Inference-Header-Content-Length": "0"}),
    "non-JSON header": _post_raw(b"\xff\xfe garbage" + bytes(784),
                                 **{"Inference-Header-Content-Length": "11"}),
    "binary_data_size mismatch": _binary(ONE_U8, size_delta=-1),
    "binary data without header length": _post_raw(
        binary_request(ONE_U8)[0], **{"Content-Type": "application/octet-stream"}),
    "data and binary_data_size": _with_input(parameters={"binary_data_size": 784}),
    "no data at all": _with_input(data=None),
    # values
    "FP32 NaN (binary)": _f32_binary([float("nan")]),
    "FP32 inf (binary)": _f32_binary([float("inf")]),
    "FP32 above 1 (binary)": _f32_binary([1.5]),
    "FP32 negative (binary)": _f32_binary([-0.25]),
    "FP32 NaN (JSON literal)": _post_raw(
        json.dumps(json_request(ONE_F32)).replace("0.0", "NaN", 1).encode()),
    "FP32 above 1 (JSON)": _post_json(json_request(ONE_F32 + 2)),
    "UINT8 256": _with_input(data=[256] + [0] * 783),
    "UINT8 negative": _with_input(data=[-1] + [0] * 783),
    "UINT8 float": _with_input(data=[0.5] + [0] * 783),
    "UINT8 bool": _with_input(data=[True] * 784),
    "UINT8 string": _with_input(data=["a"] * 784),
    "UINT8 null": _with_input(data=[None] * 784),
    "data length mismatch": _with_input(data=[0] * 783),
    "ragged nested data": _with_input(data=[[0] * 28] * 27 + [[0] * 27]),
    "huge integer in data": _with_input(data=[2**70] + [0] * 783),
    # shapes
    "negative batch": _with_input(shape=[-1, 28, 28, 1]),
    "negative dim": _with_input(shape=[1, -28, 28, 1]),
    "huge batch": _with_input(shape=[2**62, 28, 28, 1]),
    "huge dim": _with_input(shape=[1, 10**9, 28, 1]),
    "huge dim beyond int64": _with_input(shape=[1, 2**70, 28, 1]),
    "rank 3": _with_input(shape=[28, 28, 1]),
    "rank 5": _with_input(shape=[1, 1, 28, 28, 1]),
    "wrong layout for UINT8": _with_input(shape=[1, 1, 28, 28]),
    "float dim": _with_input(shape=[1.0, 28, 28, 1]),
    "bool dim": _with_input(shape=[True, 28, 28, 1]),
    "string dim": _with_input(shape=["1", 28, 28, 1]),
    "empty batch": _with_input(shape=[0, 28, 28, 1], data=[]),
    "batch above max": _with_input(shape=[65, 28, 28, 1], data=[0] * (65 * 784)),
    # datatypes, names, fields
    "wrong datatype": _with_input(datatype="FP32"),
    "unsupported datatype": _with_input(datatype="FP64"),
    "lowercase datatype": _with_input(datatype="uint8"),
    "unknown input name": _with_input(name="pixels"),
    "two inputs": _post_json({"inputs": json_request(ONE_U8)["inputs"] * 2}),
    "no inputs": _post_json({"inputs": []}),
    "inputs missing": _post_json({"outputs": [{"name": "label"}]}),
    "unknown top-level field": _post_json({**json_request(ONE_U8), "foo": 1}),
    "unknown input field": _with_input(foo=1),
    "unknown input parameter": _with_input(parameters={"shared_memory_region": "x"}),
    "unknown request parameter": _post_json({**json_request(ONE_U8),
                                             "parameters": {"sequence_id": 3}}),
    "classification output parameter": _post_json(
        {**json_request(ONE_U8), "outputs": [{"name": "label",
                                              "parameters": {"classification": 3}}]}),
    "unknown output (logits)": _post_json({**json_request(ONE_U8),
                                           "outputs": [{"name": "logits"}]}),
    "duplicate output": _post_json({**json_request(ONE_U8),
                                    "outputs": [{"name": "label"}, {"name": "label"}]}),
    "binary_data not a bool": _post_json(
        {**json_request(ONE_U8), "outputs": [{"name": "label",
                                              "parameters": {"binary_data": "yes"}}]}),
    "id not a string": _post_json({**json_request(ONE_U8), "id": 5}),
    "model_name mismatch": _post_json({**json_request(ONE_U8), "model_name": "other"}),
    "model_version 2": _post_json({**json_request(ONE_U8), "model_version": "2"}),
    # JSON itself
    "truncated JSON": _post_raw(b'{"inputs": [', **{"Content-Type": "application/json"}),
    "JSON array": _post_raw(b"[]", **{"Content-Type": "application/json"}),
    "JSON null": _post_raw(b"null", **{"Content-Type": "application/json"}),
    "not JSON": _post_raw(b"hello", **{"Content-Type": "application/json"}),
    "not UTF-8": _post_raw(b'{"id": "\xff"}', **{"Content-Type": "application/json"}),
    "empty body": _post_raw(b"", **{"Content-Type": "application/json"}),
    "deeply nested JSON": _post_raw(b"[" * 5000 + b"]" * 5000),
    # content type, encoding, names, versions
    "text/plain": _post_raw(json.dumps(json_request(ONE_U8)).encode(),
                            **{"Content-Type": "text/plain"}),
    "form-urlencoded": _post_raw(b"a=1", **{"Content-Type": "application/x-www-form-urlencoded"}),
    "truncated gzip": _post_raw(b"\x1f\x8b", **{"Content-Encoding": "gzip"}),
    "br encoding": _post_raw(b"\x00", **{"Content-Encoding": "br"}),
    "invalid model name": _post_json(json_request(ONE_U8), "/v2/models/Bad_Name/infer"),
    "unknown model": _post_json(json_request(ONE_U8), "/v2/models/nope/infer"),
    "unknown version": _post_json(json_request(ONE_U8), "/v2/models/target/versions/2/infer"),
    "dot-dot model name": _post_json(json_request(ONE_U8), "/v2/models/..target/infer"),
    # uploads
    "bad PNG": _form([("files", ("x.png", b"\x89PNG\r\n\x1a\n garbage", "image/png"))]),
    "truncated PNG": _form([("files", ("x.png", PNG_28[:40], "image/png"))]),
    "GIF upload": _form([("files", ("x.gif", b"GIF89a" + bytes(40), "image/gif"))]),
    "empty file": _form([("files", ("x.png", b"", "image/png"))]),
    "wrong image size": _form([("files", ("x.png", png_bytes(np.zeros((27, 28, 1), np.uint8)),
                                          "image/png"))]),
    "wrong form field": _form([("image", ("x.png", PNG_28, "image/png"))]),
    "too many files": _form([("files", (f"{i}.png", PNG_28, "image/png")) for i in range(65)]),
    "upload not multipart": _post_json({"files": []}, CLASSIFY),
    "broken multipart": _post_raw(b"--x\r\nnot a part", CLASSIFY,
                                  **{"Content-Type": "multipart/form-data; boundary=x"}),
}


@pytest.fixture(scope="module")
def answers(server: RunningServer) -> dict[str, tuple[int, Any]]:
    out = {}
    with server.client() as client:
        for name, request in CORPUS.items():
            response = client.request(**request)
            try:
                body = response.json()
            except ValueError:
                body = response.text
            out[name] = (response.status_code, body)
    return out


@pytest.mark.parametrize("name", list(CORPUS))
def test_malformed_request_is_a_4xx_with_error(answers, name: str) -> None:
    status, body = answers[name]
    assert 400 <= status < 500, (status, body)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in body["error"] and "internal error" not in body["error"]


def test_specific_statuses(answers) -> None:
    assert answers["unknown model"][0] == 404
    assert answers["unknown version"][0] == 404
    assert answers["invalid model name"][0] == 400
    assert answers["text/plain"][0] == 415
    assert answers["truncated gzip"][0] == 400
    assert answers["br encoding"][0] == 415
    assert answers["upload not multipart"][0] == 415
    assert "max batch size" in answers["batch above max"][1]["error"]
    assert "empty batch" in answers["empty batch"][1]["error"]
    assert "finite" in answers["FP32 NaN (binary)"][1]["error"]
    assert "[0, 1]" in answers["FP32 above 1 (binary)"][1]["error"]


def test_server_healthy_and_correct_after_corpus(server: RunningServer, answers,
                                                 test_images) -> None:
    from tests.server.conftest import to_uint8_nhwc

    assert len(answers) == len(CORPUS)
    with server.client() as client:
        assert client.get("/v2/health/ready").status_code == 200
        ok = client.post(INFER, json=json_request(to_uint8_nhwc(test_images[:4])))
        assert ok.status_code == 200 and len(ok.json()["outputs"][0]["data"]) == 4
    metrics = server.metrics()
    assert metrics.get(failure_key("internal"),
                       0) == 0
    assert metrics[failure_key("bad_request")] > 30

