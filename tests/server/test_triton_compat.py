"""Triton compatibility: gzip / deflate request bodies (limit on the inflated size), the
statistics extension, raw image bodies on the upload route, and tritonclient itself."""

from __future__ import annotations

import gzip
import json
import zlib

import numpy as np
import pytest

from tests.server.conftest import (
    binary_request,
    json_request,
    parse_binary_response,
    png_bytes,
    to_uint8_nhwc,
)

INFER = "/v2/models/target/infer"
CLASSIFY = "/v1/models/target/classify"


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(("encoding", "pack"), [("gzip", gzip.compress),
                                                ("deflate", zlib.compress),
                                                ("deflate", _raw_deflate)])
def test_compressed_bodies_answer_like_plain_ones(server, test_images, encoding, pack) -> None:
    images = to_uint8_nhwc(test_images[:16])
    body, headers = binary_request(images, parameters={"binary_data_output": True})
    document = json.dumps(json_request(images)).encode()
    with server.client() as client:
        plain = parse_binary_response(client.post(INFER, content=body, headers=headers))[1]
        packed = client.post(INFER, content=pack(body),
                             headers={**headers, "Content-Encoding": encoding})
        packed_json = client.post(INFER, content=pack(document),
                                  headers={"Content-Type": "application/json",
                                           "Content-Encoding": encoding})
    assert packed.status_code == 200 and packed_json.status_code == 200
    np.testing.assert_array_equal(parse_binary_response(packed)[1], plain)
    assert packed_json.json()["outputs"][0]["data"] == plain.tolist()


def test_bombs_corrupt_and_unknown_encodings(server_factory, serve_repo, test_images) -> None:
    running = server_factory(repository=serve_repo, models="target", device="cpu",
                             max_json_body_mb=1)
    bomb = gzip.compress(b" " * (8 << 20))  # 8 MiB of spaces, about 8 KB compressed
    good = gzip.compress(json.dumps(json_request(to_uint8_nhwc(test_images[:2]))).encode())
    gz = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    with running.client() as client:
        too_big = client.post(INFER, content=bomb, headers=gz)
        truncated = client.post(INFER, content=good[:-9], headers=gz)
        trailing = client.post(INFER, content=good + b"junk", headers=gz)
        not_gzip = client.post(INFER, content=b"plain text", headers=gz)
        brotli = client.post(INFER, content=good, headers={**gz, "Content-Encoding": "br"})
        still_fine = client.post(INFER, content=good, headers=gz)
    assert too_big.status_code == 413 and "inflates past" in too_big.json()["error"]
    assert truncated.status_code == 400 and trailing.status_code == 400
    assert not_gzip.status_code == 400 and "corrupt" in not_gzip.json()["error"]
    assert brotli.status_code == 415
    assert still_fine.status_code == 200


def test_statistics_extension(server_factory, serve_repo, test_images) -> None:
    running = server_factory(repository=serve_repo, device="cpu")
    body, headers = binary_request(to_uint8_nhwc(test_images[:8]))
    with running.client() as client:
        assert "statistics" in client.get("/v2").json()["extensions"]
        for _ in range(3):
            assert client.post(INFER, content=body, headers=headers).status_code == 200
        assert client.post(INFER, content=b"{", headers={"Content-Type": "application/json"}
                           ).status_code == 400
        one = client.get("/v2/models/target/stats").json()
        versioned = client.get("/v2/models/target/versions/1/stats").json()
        every = client.get("/v2/models/stats").json()
        missing = client.get("/v2/models/target/versions/2/stats")
    (stats,) = one["model_stats"]
    assert stats["name"] == "target" and stats["version"] == "1"
    assert stats["inference_count"] == 24
    assert stats["execution_count"] >= 3  # 3 batches, plus none from the warm-up
    inference = stats["inference_stats"]
    assert inference["success"]["count"] == 3 and inference["fail"]["count"] == 1
    assert inference["queue"]["count"] == 3
    assert inference["compute_infer"]["count"] == stats["execution_count"]
    assert inference["compute_infer"]["ns"] > 0 and inference["success"]["ns"] > 0
    assert sum(b["compute_infer"]["count"] for b in stats["batch_stats"]) == 3
    assert versioned["model_stats"][0]["inference_count"] == 24
    assert sorted(m["name"] for m in every["model_stats"]) == ["target", "target-csrp"]
    assert missing.status_code == 404


def test_tritonclient_reads_statistics_and_sends_gzip(server, test_images) -> None:
    http = pytest.importorskip("tritonclient.http")
    images = to_uint8_nhwc(test_images[:4])
    client = http.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        tensor = http.InferInput("images", list(images.shape), "UINT8")
        tensor.set_data_from_numpy(images, binary_data=True)
        plain = client.infer("target", [tensor]).as_numpy("label")
        for algorithm in ("gzip", "deflate"):
            packed = client.infer("target", [tensor], request_compression_algorithm=algorithm)
            np.testing.assert_array_equal(packed.as_numpy("label"), plain)
        stats = client.get_inference_statistics("target")
        everything = client.get_inference_statistics()
    finally:
        client.close()
    assert stats["model_stats"][0]["inference_count"] >= 12
    assert {m["name"] for m in everything["model_stats"]} >= {"target"}


def test_raw_image_bodies(server, test_images) -> None:
    images = to_uint8_nhwc(test_images[:1])
    png = png_bytes(images[0])
    jpeg = png_bytes(images[0], "JPEG")
    with server.client() as client:
        form = client.post(CLASSIFY, files=[("files", ("a.png", png, "image/png"))]).json()
        raw = client.post(CLASSIFY, content=png, headers={"Content-Type": "image/png"})
        raw_jpeg = client.post(CLASSIFY, content=jpeg, headers={"Content-Type": "image/jpeg"})
        mislabelled = client.post(CLASSIFY, content=png, headers={"Content-Type": "image/jpeg"})
        wrong_size = client.post(CLASSIFY, content=png_bytes(np.zeros((30, 30, 1), np.uint8)),
                                 headers={"Content-Type": "image/png"})
        empty = client.post(CLASSIFY, content=b"", headers={"Content-Type": "image/png"})
        gif = client.post(CLASSIFY, content=b"GIF89a", headers={"Content-Type": "image/gif"})
        encoded = client.post(CLASSIFY, content=gzip.compress(png),
                              headers={"Content-Type": "image/png", "Content-Encoding": "gzip"})
    assert raw.status_code == 200 and raw.json() == form
    assert raw_jpeg.status_code == 200 and len(raw_jpeg.json()["labels"]) == 1
    assert mislabelled.status_code == 400 and "JPEG" in mislabelled.json()["error"]
    assert wrong_size.status_code == 400 and "28x28" in wrong_size.json()["error"]
    assert empty.status_code == 400
    assert gif.status_code == 415 and encoded.status_code == 415


def test_raw_image_body_over_the_limit_is_413(server_factory, serve_repo) -> None:
    running = server_factory(repository=serve_repo, models="target", device="cpu",
                             max_body_mb=0.01)
    with running.client() as client:
        response = client.post(CLASSIFY, content=b"\x89PNG" + bytes(20000),
                               headers={"Content-Type": "image/png"})
        assert response.status_code == 413
        assert client.get("/v2/health/ready").status_code == 200
