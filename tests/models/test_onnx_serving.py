"""The ONNX serving graph: CSRP in the graph is pixel-for-pixel the torch transform, and the
graph's labels are the model's labels on the transformed batch."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from models.onnx_export import OPSET, export_onnx
from models.onnx_serving import LABEL_NAME, OFFSETS_NAME, csrp_prefix, serving_graph
from models.repository import build_classifier
from models.transforms.csrp import csrp
from tests.models.test_csrp_tables import SIZES


def _session(graph: bytes | onnx.ModelProto) -> ort.InferenceSession:
    data = graph if isinstance(graph, bytes) else graph.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(("shape", "sigma", "p"), SIZES)
def test_prefix_pixels_are_bit_identical_to_torch_csrp(shape, sigma: float, p: int) -> None:
    session = _session(csrp_prefix(shape, sigma, p, OPSET, 8))
    rng = np.random.default_rng(1)
    for n in (1, 5, 33):
        images = rng.random((n, *shape), dtype=np.float32)
        offsets = rng.integers(0, p + 1, (n, 2)).astype(np.int64)
        got = session.run(["csrp/image"], {"input": images, OFFSETS_NAME: offsets})[0]
        want = csrp(torch.from_numpy(images), sigma, p, offsets=torch.from_numpy(offsets),
                    backend="eager").numpy()
        np.testing.assert_array_equal(got, want)


@pytest.fixture(scope="module")
def tiny_model_bytes() -> tuple[torch.nn.Module, bytes]:
    from models.config import ModelConfig

    config = ModelConfig(name="t", arch="resnet20", dataset="fashion-mnist", num_classes=10,
                         input_shape=(1, 28, 28), labels=[str(i) for i in range(10)],
                         mean=[0.286], std=[0.353])
    torch.manual_seed(0)
    model = build_classifier(config)
    return model, export_onnx(model, [1, 28, 28])


def test_serving_graph_labels_equal_model_on_csrp_batch(tiny_model_bytes) -> None:
    _, raw = tiny_model_bytes
    session = _session(serving_graph(raw, (1, 28, 28), (1.23, 6)))
    assert [i.name for i in session.get_inputs()] == ["input", OFFSETS_NAME]
    assert [o.name for o in session.get_outputs()] == [LABEL_NAME]  # no logits leave the graph
    rng = np.random.default_rng(2)
    images = rng.random((64, 1, 28, 28), dtype=np.float32)
    offsets = rng.integers(0, 7, (64, 2)).astype(np.int64)
    labels = session.run([LABEL_NAME], {"input": images, OFFSETS_NAME: offsets})[0]
    plain = _session(raw)
    transformed = csrp(torch.from_numpy(images), 1.23, 6, offsets=torch.from_numpy(offsets))
    expected = plain.run(["logits"], {"input": transformed.numpy()})[0].argmax(1)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, expected)


def test_serving_graph_without_preprocessing_is_model_argmax(tiny_model_bytes) -> None:
    _, raw = tiny_model_bytes
    session = _session(serving_graph(raw, (1, 28, 28), None))
    assert [i.name for i in session.get_inputs()] == ["input"]
    images = np.random.default_rng(3).random((8, 1, 28, 28), dtype=np.float32)
    expected = _session(raw).run(["logits"], {"input": images})[0].argmax(1)
    np.testing.assert_array_equal(session.run([LABEL_NAME], {"input": images})[0], expected)


def test_serving_graph_refuses_other_contracts(tiny_model_bytes) -> None:
    _, raw = tiny_model_bytes
    model = onnx.load_model_from_string(raw)
    model.graph.output[0].name = "scores"
    model.graph.node[-1].output[0] = "scores"
    with pytest.raises(ValueError, match="output 'logits'"):
        serving_graph(model.SerializeToString(), (1, 28, 28), (1.23, 6))
    with pytest.raises(ValueError, match="vanish"):
        serving_graph(raw, (1, 28, 28), (1.23, 40))
