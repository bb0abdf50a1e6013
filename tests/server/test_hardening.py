"""Defects found by an adversarial pass (issue "Hardening"), one test each: nothing a client sends
makes a 500 or hangs a worker, errors count under the right reason, the wire never carries
internal paths, a bad entry can be isolated, and the OpenAPI document shows the contract."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import socket
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.repository import CONFIG_FILE, ONNX_FILE, WEIGHTS_FILE
from server.core.errors import BadRequestError
from server.protocol.codec import Signature
from server.protocol.images import decode_image

from .conftest import binary_request, failure_key, png_bytes

INFER = "/v2/models/target/infer"
ONE = np.zeros((1, 28, 28, 1), np.uint8)
SIGNATURE = Signature(1, 28, 28, 64)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (len(data).to_bytes(4, "big") + kind + data
            + zlib.crc32(kind + data).to_bytes(4, "big"))


def _png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(_chunk(k, d) for k, d in chunks)


def _ihdr(color_type: int, bit_depth: int = 8) -> tuple[bytes, bytes]:
    return b"IHDR", (28).to_bytes(4, "big") * 2 + bytes([bit_depth, color_type, 0, 0, 0])


def _idat(row_bytes: int) -> tuple[bytes, bytes]:
    return b"IDAT", zlib.compress(b"".join(b"\x00" + b"\x00" * row_bytes for _ in range(28)))


#: A palette PNG with a tRNS chunk and no PLTE (Pillow: AssertionError), and an empty iCCP chunk
#: after IDAT (Pillow: IndexError): both were 500s.
CRAFTED = {
    "palette-trns-no-plte": _png([_ihdr(3), (b"tRNS", b"\x00"), _idat(28), (b"IEND", b"")]),
    "empty-iccp-after-idat": _png([_ihdr(0), _idat(28), (b"iCCP", b""), (b"IEND", b"")]),
}


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted_pngs_are_400_not_500(name: str) -> None:
    with pytest.raises(BadRequestError, match="not a decodable PNG or JPEG"):
        decode_image(CRAFTED[name], SIGNATURE)


def test_decoder_fuzz_only_ever_answers_400() -> None:
    """Mutations of valid PNG and JPEG files (bit flips, truncations, splices, chunk drops):
    every one decodes or is a BadRequestError, nothing else."""
    rng = random.Random(0)
    grey = np.random.default_rng(0).integers(0, 256, (28, 28, 1), dtype=np.uint8)
    seeds = [png_bytes(grey), png_bytes(grey, "JPEG"), *CRAFTED.values()]
    decoded = refused = 0
    for _ in range(600):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            move = rng.random()
            position = rng.randrange(len(data))
            if move < 0.4:
                data[position] ^= 1 << rng.randrange(8)
            elif move < 0.6:
                del data[position:]
                if not data:
                    data = bytearray(b"\x89")
            elif move < 0.8:
                data[position:position] = bytes(rng.randrange(256) for _ in range(8))
            else:
                data[position:position + 16] = b""
        try:
            decode_image(bytes(data), SIGNATURE)
            decoded += 1
        except BadRequestError:
            refused += 1
    assert decoded + refused == 600 and refused > 100


def test_non_ascii_digit_in_header_length_is_400(server) -> None:
    body, headers = binary_request(ONE)
    raw_headers = {k: v.encode() for k, v in headers.items()}
    raw_headers["Inference-Header-Content-Length"] = b"\xb2"  # "²": str.isdigit says yes
    with server.client() as client:
        response = client.post(INFER, content=body, headers=raw_headers)
    assert response.status_code == 400
    assert "must be a non-negative integer" in response.json()["error"]


def _raw(port: int, data: bytes, wait_s: float) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(data)
        received = b""
        try:
            while True:
                part = sock.recv(65536)
                if not part:
                    break
                received += part
        except TimeoutError:
            pass
    return received


def test_slow_and_endless_bodies_time_out(server_factory, serve_repo) -> None:
    running = server_factory(repository=serve_repo, models="target", body_timeout_s=1.0)
    started = time.monotonic()
    slow = (f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            "Content-Length: 1000\r\nInference-Header-Content-Length: 10\r\n\r\n"
            ).encode() + b"x" * 10
    answer = _raw(running.port, slow, wait_s=10)
    assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive within 1 s" in answer
    endless = (f"POST {INFER} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               "Content-Type: application/octet-stream\r\n\r\n"
               f"{2 ** 80:x}\r\n").encode() + b"x" * 100
    answer = _raw(running.port, endless, wait_s=10)
    assert answer == b"" or answer.startswith((b"HTTP/1.1 408", b"HTTP/1.1 400"))
    assert time.monotonic() - started < 15  # neither held the server for long
    with running.client() as client:  # and it still serves
        body, headers = binary_request(ONE)
        assert client.post(INFER, content=body, headers=headers).status_code == 200


def test_json_bodies_have_their_own_smaller_limit(server_factory, serve_repo) -> None:
    running = server_factory(repository=serve_repo, models="target", max_json_body_mb=0.1)
    images = np.zeros((64, 28, 28, 1), np.uint8)
    payload = json.dumps({"inputs": [{"name": "images", "shape": list(images.shape),
                                      "datatype": "UINT8", "data": images.ravel().tolist()}]})
    assert len(payload) > 0.1 * 1024 * 1024
    with running.client() as client:
        response = client.post(INFER, content=payload,
                               headers={"Content-Type": "application/json"})
        assert response.status_code == 413 and "JSON request body" in response.json()["error"]
        body, headers = binary_request(images)  # the same images as binary tensors: fine
        assert client.post(INFER, content=body, headers=headers).status_code == 200
    metrics = running.metrics()
    assert metrics[failure_key("too_large")] == 1
    assert metrics['http_request_rejected_total{reason="too_large"}'] == 1


def test_a_client_that_leaves_mid_body_is_no_internal_error(server_factory, serve_repo,
                                                            caplog) -> None:
    running = server_factory(repository=serve_repo, models="target")
    head = (f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            "Content-Length: 5000\r\nInference-Header-Content-Length: 10\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", running.port)) as sock:
        sock.sendall(head + b"x" * 100)
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    key = failure_key("client_disconnect")
    while time.monotonic() < deadline and running.metrics().get(key) != 1:
        time.sleep(0.05)
    metrics = running.metrics()
    assert metrics[key] == 1
    assert failure_key("internal") not in metrics
    assert "Traceback" not in caplog.text


def _broken_repo(tmp: Path, serve_repo: Path) -> Path:
    repo = tmp / "repo"
    shutil.copytree(serve_repo / "target", repo / "target")
    shutil.copytree(serve_repo / "target", repo / "broken")
    config = json.loads((repo / "broken" / CONFIG_FILE).read_text())
    config.update(name="inner-name", backend="onnx")
    (repo / "broken" / CONFIG_FILE).write_text(json.dumps(config))
    (repo / "broken" / ONNX_FILE).write_bytes(b"not an onnx graph")
    (repo / "broken" / WEIGHTS_FILE).unlink()
    return repo


def test_one_bad_entry_can_be_isolated_and_leaks_no_paths(server_factory, serve_repo,
                                                          tmp_path: Path) -> None:
    repo = _broken_repo(tmp_path, serve_repo)
    running = server_factory(repository=repo, exit_on_error=False)
    with running.client() as client:
        deadline = time.monotonic() + 60
        while client.get("/v2/health/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        ready = client.get("/v2/health/ready")
        assert ready.status_code == 200, ready.text
        assert set(ready.json()["unavailable"]) == {"broken"}
        body, headers = binary_request(ONE)
        assert client.post(INFER, content=body, headers=headers).status_code == 200
        answers = [client.post("/v2/models/broken/infer", content=body, headers=headers),
                   client.get("/v2/models/broken/ready"), client.get("/v2/models/broken")]
    for answer in [ready, *answers]:
        text = answer.text
        assert str(tmp_path) not in text and "/" not in text.replace("\\/", "")
        assert "onnxruntime" not in text.lower() and "INVALID_PROTOBUF" not in text
    for answer in answers:
        assert answer.status_code == 503 and "'broken'" in answer.json()["error"]


def test_by_default_a_bad_entry_stops_the_server_naming_its_folder(serve_repo,
                                                                    tmp_path: Path) -> None:
    from server.cli import main

    repo = _broken_repo(tmp_path, serve_repo)
    (repo / "broken" / ONNX_FILE).unlink()  # found at planning: exit 2 before serving
    code = main(["--repository", str(repo), "--port", "0"])
    assert code == 2


def test_symlinks_out_of_the_repository_are_refused(server_factory, serve_repo,
                                                     tmp_path: Path, capsys) -> None:
    from server.cli import main

    repo = tmp_path / "repo"
    repo.mkdir()
    outside = tmp_path / "elsewhere"
    shutil.copytree(serve_repo / "target", outside)
    os.symlink(outside, repo / "linked")
    code = main(["--repository", str(repo), "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "model 'linked'" in err and "--allow-symlinks" in err
    running = server_factory(repository=repo, allow_symlinks=True)
    with running.client() as client:
        body, headers = binary_request(ONE)
        assert client.post("/v2/models/linked/infer", content=body,
                           headers=headers).status_code == 200


def test_openapi_describes_the_bodies_and_the_name_pattern(server) -> None:
    with server.client() as client:
        schema = client.get("/openapi.json").json()
        newline = client.get("/v2/models/target%0a")
    infer = schema["paths"]["/v2/models/{name}/infer"]["post"]
    content = infer["requestBody"]["content"]
    assert content["application/json"]["schema"]["$ref"] == "#/components/schemas/InferenceRequest"
    assert "application/octet-stream" in content
    assert "InferenceRequest" in schema["components"]["schemas"]
    assert "RequestInput" in schema["components"]["schemas"]
    name = next(p for p in infer["parameters"] if p["name"] == "name")
    assert name["schema"]["pattern"] == r"^[a-z0-9][a-z0-9._-]{0,127}$"
    classify = schema["paths"]["/v1/models/{name}/classify"]["post"]
    assert "multipart/form-data" in classify["requestBody"]["content"]
    assert newline.status_code == 400  # a trailing newline is an invalid name, not unknown


def test_upload_route_answers_400_for_the_crafted_pngs(server) -> None:
    with server.client() as client:
        for data in CRAFTED.values():
            response = client.post("/v1/models/target/classify",
                                   files={"files": ("x.png", io.BytesIO(data), "image/png")})
            assert response.status_code == 400, response.text
        ok = io.BytesIO()
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(ok, "PNG")
        response = client.post("/v1/models/target/classify",
                               files={"files": ("x.png", io.BytesIO(ok.getvalue()), "image/png")})
        assert response.status_code == 200
