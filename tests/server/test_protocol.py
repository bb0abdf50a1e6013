"""Open Inference Protocol conformance of every route, JSON and binary, over real HTTP."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from models.runtime import load_predictor
from tests.server.conftest import (
    RunningServer,
    binary_request,
    json_request,
    parse_binary_response,
    png_bytes,
    to_uint8_nhwc,
)


@pytest.fixture(scope="module")
def expected(serve_repo, test_images: torch.Tensor) -> np.ndarray:
    return load_predictor(serve_repo / "target", "onnx").predict(test_images).numpy()


def test_health_and_server_metadata(server: RunningServer) -> None:
    with server.client() as client:
        live = client.get("/v2/health/live")
        assert live.status_code == 200 and live.json() == {"live": True}
        ready = client.get("/v2/health/ready")
        assert ready.status_code == 200 and ready.json() == {"ready": True}
        meta = client.get("/v2")
        assert meta.status_code == 200
        body = meta.json()
        assert body["name"] and body["version"]
        assert "binary_tensor_data" in body["extensions"]


def test_model_metadata_and_ready(server: RunningServer) -> None:
    with server.client() as client:
        for path in ("/v2/models/target", "/v2/models/target/versions/1"):
            meta = client.get(path).json()
            assert meta["name"] == "target" and meta["versions"] == ["1"]
            assert meta["platform"] == "onnxruntime_onnx"
            assert meta["inputs"] == [
                {"name": "images", "datatype": "UINT8", "shape": [-1, 28, 28, 1]},
                {"name": "input", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
            assert meta["outputs"] == [{"name": "label", "datatype": "INT64", "shape": [-1]}]
            params = meta["parameters"]
            assert params["backend"] == "onnx" and params["device"] == "cpu"
            assert params["providers"] == ["CPUExecutionProvider"]
            assert params["preprocessing"] is None and params["max_batch_size"] == 64
        csrp = client.get("/v2/models/target-csrp").json()["parameters"]["preprocessing"]
        assert csrp == {"name": "csrp", "sigma": 1.16, "p": 3}
        for path in ("/v2/models/target/ready", "/v2/models/target/versions/1/ready"):
            ready = client.get(path)
            assert ready.status_code == 200 and ready.json() == {"name": "target", "ready": True}
        assert client.get("/v2/models/target/versions/2").status_code == 404
        assert client.get("/v2/models/nope").status_code == 404
        assert client.get("/v2/models/nope/ready").json()["error"] == "unknown model 'nope'"


def test_infer_json_uint8_and_fp32(server: RunningServer, test_images, expected) -> None:
    images = test_images[:8]
    with server.client() as client:
        response = client.post("/v2/models/target/infer",
                               json=json_request(to_uint8_nhwc(images), id="req-1"))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body == {"model_name": "target", "model_version": "1", "id": "req-1",
                        "outputs": [{"name": "label", "datatype": "INT64", "shape": [8],
                                     "data": expected[:8].tolist()}]}
        fp32 = client.post("/v2/models/target/versions/1/infer",
                           json=json_request(images.numpy()))
        assert fp32.json()["outputs"][0]["data"] == expected[:8].tolist()
        assert "id" not in fp32.json()
        nested = json_request(images.numpy())
        nested["inputs"][0]["data"] = images.numpy().tolist()  # nested arrays are allowed too
        assert client.post("/v2/models/target/infer",
                           json=nested).json()["outputs"][0]["data"] == expected[:8].tolist()


@pytest.mark.parametrize("as_uint8", [True, False])
def test_infer_binary_in_binary_out(server: RunningServer, test_images, expected,
                                    as_uint8: bool) -> None:
    images = test_images[:16]
    array = to_uint8_nhwc(images) if as_uint8 else images.numpy()
    body, headers = binary_request(array, outputs=[{"name": "label",
                                                    "parameters": {"binary_data": True}}],
                                   request_id="b1")
    with server.client() as client:
        response = client.post("/v2/models/target/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    head, labels = parse_binary_response(response)
    assert head["id"] == "b1" and head["model_name"] == "target"
    assert head["outputs"][0] == {"name": "label", "datatype": "INT64", "shape": [16],
                                  "parameters": {"binary_data_size": 128}}
    assert int(response.headers["content-length"]) == len(response.content)
    np.testing.assert_array_equal(labels, expected[:16])


def test_binary_in_json_out_and_binary_data_output(server: RunningServer, test_images,
                                                    expected) -> None:
    array = to_uint8_nhwc(test_images[:4])
    with server.client() as client:
        body, headers = binary_request(array)  # no outputs: JSON labels
        response = client.post("/v2/models/target/infer", content=body, headers=headers)
        assert "inference-header-content-length" not in response.headers
        assert response.json()["outputs"][0]["data"] == expected[:4].tolist()
        # tritonclient with outputs=None sends parameters.binary_data_output = true
        body, headers = binary_request(array, parameters={"binary_data_output": True})
        _, labels = parse_binary_response(
            client.post("/v2/models/target/infer", content=body, headers=headers))
        np.testing.assert_array_equal(labels, expected[:4])
        # per-output binary_data false overrides binary_data_output true
        body, headers = binary_request(array, parameters={"binary_data_output": True},
                                       outputs=[{"name": "label",
                                                 "parameters": {"binary_data": False}}])
        response = client.post("/v2/models/target/infer", content=body, headers=headers)
        assert response.json()["outputs"][0]["data"] == expected[:4].tolist()
        # JSON in, binary out; no Content-Type at all (tritonclient sends none)
        request = json_request(array, outputs=[{"name": "label",
                                                "parameters": {"binary_data": True}}])
        response = client.post("/v2/models/target/infer", content=json.dumps(request))
        _, labels = parse_binary_response(response)
        np.testing.assert_array_equal(labels, expected[:4])


def test_tritonclient_shaped_request(server: RunningServer, test_images, expected) -> None:
    """Byte for byte what tritonclient.http builds: header JSON with id, priority/timeout
    parameters, binary inputs after it, Inference-Header-Content-Length, no Content-Type."""
    array = test_images[:3].numpy()
    raw = array.astype("<f4").tobytes()
    header = {"id": "7", "parameters": {"priority": 0, "timeout": 1000},
              "inputs": [{"name": "input", "shape": [3, 1, 28, 28], "datatype": "FP32",
                          "parameters": {"binary_data_size": len(raw)}}],
              "outputs": [{"name": "label", "parameters": {"binary_data": True}}]}
    head = json.dumps(header).encode()
    with server.client() as client:
        response = client.post("/v2/models/target/infer", content=head + raw,
                               headers={"Inference-Header-Content-Length": str(len(head))})
    result, labels = parse_binary_response(response)
    assert result["id"] == "7"
    np.testing.assert_array_equal(labels, expected[:3])


def test_classify_upload(server: RunningServer, test_images, expected) -> None:
    arrays = to_uint8_nhwc(test_images[:3])
    files = [("files", (f"{i}.png", png_bytes(a), "image/png")) for i, a in enumerate(arrays)]
    with server.client() as client:
        response = client.post("/v1/models/target/classify", files=files)
        assert response.status_code == 200, response.text
        body = response.json()
        names = client.get("/v2/models/target").json()["parameters"]["class_names"]
        assert body == {"model_name": "target", "labels": expected[:3].tolist(),
                        "names": [names[i] for i in expected[:3]]}
        # RGB JPEG is converted to the model's one channel (lossy: compare with PIL's decode)
        rgb = np.repeat(arrays[0], 3, axis=2)
        jpeg = png_bytes(rgb, "JPEG")
        response = client.post("/v1/models/target/classify",
                               files=[("file", ("a.jpg", jpeg, "image/jpeg"))])
        assert response.status_code == 200
        from io import BytesIO

        from PIL import Image

        grey = np.asarray(Image.open(BytesIO(jpeg)).convert("L"))[None, :, :, None]
        again = client.post("/v2/models/target/infer", json=json_request(grey))
        assert response.json()["labels"] == again.json()["outputs"][0]["data"]
        # the server never resizes
        big = np.zeros((32, 32, 1), np.uint8)
        response = client.post("/v1/models/target/classify",
                               files=[("files", ("big.png", png_bytes(big), "image/png"))])
        assert response.status_code == 400
        assert "32x32" in response.json()["error"] and "28x28" in response.json()["error"]


def test_metrics_exposed(server: RunningServer) -> None:
    with server.client() as client:
        client.post("/v2/models/target/infer",
                    json=json_request(np.zeros((2, 28, 28, 1), np.uint8)))
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in ("inference_request_total", "inference_request_failure_total",
                 "inference_count_total", "inference_batch_count_total",
                 "inference_batch_size_bucket", "inference_queue_duration_seconds_bucket",
                 "inference_preprocess_duration_seconds_bucket",
                 "inference_compute_duration_seconds_bucket", "inference_queue_depth",
                 "model_ready"):
        assert f'{name}{{model="target"' in text or f"{name}{{" in text, name
    values = server.metrics()
    assert values['inference_count_total{model="target",version="1"}'] >= 2
    assert values['model_ready{model="target",version="1"}'] == 1


def test_unknown_route_and_method_are_json_errors(server: RunningServer) -> None:
    with server.client() as client:
        missing = client.get("/v3/nothing")
        assert missing.status_code == 404 and "error" in missing.json()
        wrong = client.get("/v2/models/target/infer")
        assert wrong.status_code == 405 and "error" in wrong.json()
