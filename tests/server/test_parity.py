"""The server answers exactly like the in-process model: plain copies label for label, CSRP
copies draw for draw under a fixed seed (draw-order contract in server.pipeline.served_model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.runtime import load_predictor
from models.transforms import csrp
from tests.server.conftest import (
    CSRP_SPEC,
    binary_request,
    json_request,
    parse_binary_response,
    to_uint8_nhwc,
)


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_plain_model_matches_in_process_predictor(server_factory, serve_repo, test_images,
                                                  backend: str) -> None:
    running = server_factory(repository=serve_repo, models="target", backend=backend,
                             device="cpu")
    expected = load_predictor(serve_repo / "target", backend).predict(test_images).numpy()
    with running.client() as client:
        meta = client.get("/v2/models/target").json()
        assert meta["parameters"]["backend"] == backend
        body, headers = binary_request(to_uint8_nhwc(test_images),
                                       parameters={"binary_data_output": True})
        _, labels = parse_binary_response(
            client.post("/v2/models/target/infer", content=body, headers=headers))
        np.testing.assert_array_equal(labels, expected)
        single = [client.post("/v2/models/target/infer",
                              json=json_request(test_images[i:i + 1].numpy())
                              ).json()["outputs"][0]["data"][0] for i in range(8)]
        assert single == expected[:8].tolist()


@pytest.mark.parametrize(("preprocess_in", "runs"), [("graph", "onnx-graph"),
                                                     ("torch", "torch")])
def test_csrp_model_matches_csrp_with_same_seed(server_factory, serve_repo, test_images,
                                                preprocess_in: str, runs: str) -> None:
    """Both places CSRP can run (inside the ONNX serving graph, or the torch transform before
    ONNX Runtime) replay the same draws under a seed."""
    seed = 1234
    running = server_factory(repository=serve_repo, models="target-csrp", seed=seed,
                             device="cpu", preprocess_in=preprocess_in)
    predictor = load_predictor(serve_repo / "target-csrp", "onnx")
    generator = torch.Generator().manual_seed(seed)
    sigma, p = CSRP_SPEC["sigma"], CSRP_SPEC["p"]
    first, second = test_images[:40], test_images[40:]
    # the server's stream: one draw per batch, in arrival order; requests sent one at a time
    expected_first = predictor.predict(csrp(first, sigma, p, generator=generator)).numpy()
    expected_second = predictor.predict(csrp(second, sigma, p, generator=generator)).numpy()
    plain = predictor.predict(test_images).numpy()
    with running.client() as client:
        meta = client.get("/v2/models/target-csrp").json()
        assert meta["parameters"]["preprocessing_runs"] == runs
        got = []
        for part in (first, second):
            body, headers = binary_request(to_uint8_nhwc(part),
                                           parameters={"binary_data_output": True})
            got.append(parse_binary_response(
                client.post("/v2/models/target-csrp/infer", content=body, headers=headers))[1])
    np.testing.assert_array_equal(got[0], expected_first)
    np.testing.assert_array_equal(got[1], expected_second)
    # CSRP is applied on the server: some labels differ from the plain model's
    assert (np.concatenate(got) != plain).any()


def test_csrp_draws_are_fresh_per_request(server_factory, serve_repo, test_images) -> None:
    """Without a seed the stream comes from the OS: repeated requests and two servers differ."""
    runs = []
    body, headers = binary_request(to_uint8_nhwc(test_images),
                                   parameters={"binary_data_output": True})
    for _ in range(2):
        running = server_factory(repository=serve_repo, models="target-csrp", device="cpu")
        with running.client() as client:
            runs.append(np.stack([parse_binary_response(
                client.post("/v2/models/target-csrp/infer", content=body, headers=headers))[1]
                for _ in range(8)]))
        running.stop()
    # the same 64 images 8 times: fresh offsets each request, so the labels vary
    assert any((runs[0][k] != runs[0][0]).any() for k in range(1, 8))
    assert (runs[0] != runs[1]).any()
