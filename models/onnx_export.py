"""ONNX export with a dynamic batch axis and a parity check against torch."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from models.config import INPUT_NAME, OUTPUT_NAME

__all__ = ["INPUT_NAME", "OPSET", "OUTPUT_NAME", "Parity", "check_parity", "export_onnx"]

OPSET = 17


def export_onnx(model: nn.Module, input_shape: list[int]) -> bytes:
    """Serialise ``model`` ([N, C, H, W] in [0, 1] -> logits) with a dynamic batch axis.

    Uses the TorchScript-based exporter (``dynamo=False``): it needs no onnxscript, takes half a
    second for ResNet-20 and produces a plain opset-17 graph that ONNX Runtime's quantiser reads.
    """
    model = model.eval().cpu()
    example = torch.rand(2, *input_shape)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example,), buffer, dynamo=False, opset_version=OPSET,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    return buffer.getvalue()


@dataclass(frozen=True)
class Parity:
    """Result of comparing an ONNX graph with its torch source on one batch."""

    samples: int
    labels_identical: bool
    label_agreement: float
    max_abs_logit_diff: float


def check_parity(model: nn.Module, onnx_bytes: bytes, images: torch.Tensor) -> Parity:
    """Run both on ``images`` (CPU provider) and compare labels and logits."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        expected = model.eval().cpu()(images.cpu()).numpy()
    got = session.run([OUTPUT_NAME], {INPUT_NAME: images.cpu().numpy().astype(np.float32)})[0]
    same = expected.argmax(1) == got.argmax(1)
    return Parity(samples=len(images), labels_identical=bool(same.all()),
                  label_agreement=float(same.mean()),
                  max_abs_logit_diff=float(np.abs(expected - got).max()))
