"""8-bit compression, the paper's first baseline pirate: static post-training quantisation.

Why ONNX Runtime and not torch: torch's *dynamic* quantisation (``quantize_dynamic``) only
covers linear/recurrent layers and leaves every convolution in float, so a "quantised" CNN would
still run float convs. Here the float ONNX export of the parent goes through ONNX Runtime's
static quantiser:

* ``quant_pre_process`` (symbolic shape inference + graph clean-up, as ORT recommends);
* ``quantize_static`` in QDQ format with MinMax calibration over ``calibration`` seeded training
  images; weights QInt8 per output channel, activations QUInt8 (default; U8S8 is ORT's fast path
  on x86) or QInt8; Conv, Gemm/MatMul, Add and pooling get Quantize/DequantizeLinear pairs.

On the CPU provider, ORT's optimiser (``ORT_ENABLE_ALL``, the session default) fuses every
``DequantizeLinear -> Conv -> QuantizeLinear`` group into ``QLinearConv`` (and Gemm into
``QGemm``), i.e. integer kernels. ``int8_op_counts`` verifies exactly that by saving ORT's
optimised graph and counting its ops; the counts are stored in the entry's metrics and an entry
without integer conv kernels is refused. The result holds only ``model.onnx`` (backend
``"onnx"``), served by ONNX Runtime like any other entry.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from models.atomic import atomic_dir, write_json
from models.datasets import ImageData
from models.entries import derive_config
from models.errors import UserError
from models.modify.base import comparison_metrics, evaluate, resolve_parent
from models.onnx_export import INPUT_NAME, export_onnx
from models.repository import CONFIG_FILE, ONNX_FILE, ModelConfig, load_model
from models.runtime import OnnxPredictor

ActivationType = Literal["uint8", "int8"]
DEFAULT_CALIBRATION = 512
INT8_CONV_OPS = ("QLinearConv", "ConvInteger")
INT8_KERNEL_OPS = (*INT8_CONV_OPS, "QGemm", "QLinearMatMul", "MatMulInteger", "QLinearAdd",
                   "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearMul",
                   "QLinearConcat", "QLinearLeakyRelu", "QLinearSigmoid")
FLOAT_CONV_OPS = ("Conv", "FusedConv", "Gemm", "MatMul", "FusedGemm", "FusedMatMul")


def _calibration_reader(images: torch.Tensor, batch_size: int) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        """Feeds float32 [B, C, H, W] batches in [0, 1] to the calibrator."""

        def __init__(self) -> None:
            array = images.detach().cpu().numpy().astype(np.float32)
            self._batches = iter([{INPUT_NAME: np.ascontiguousarray(array[i:i + batch_size])}
                                  for i in range(0, len(array), batch_size)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    return _Reader()


def quantize_onnx(onnx_bytes: bytes, calibration: torch.Tensor, *, per_channel: bool = True,
                  activation_type: ActivationType = "uint8", batch_size: int = 64) -> bytes:
    """Static QDQ int8 quantisation of a float ONNX graph with ``calibration`` images
    (float32 [N, C, H, W] in [0, 1]); returns the quantised graph."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration) < 1:
        raise UserError("int8 calibration needs at least one image")
    activations = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}[activation_type]
    with tempfile.TemporaryDirectory(prefix="int8-") as tmp:
        source, prepared, quantised = (Path(tmp) / n for n in ("f.onnx", "p.onnx", "q.onnx"))
        source.write_bytes(onnx_bytes)
        quant_pre_process(str(source), str(prepared))
        quantize_static(str(prepared), str(quantised),
                        _calibration_reader(calibration, batch_size),
                        quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        weight_type=QuantType.QInt8, activation_type=activations)
        return quantised.read_bytes()


def graph_op_counts(onnx_bytes: bytes) -> dict[str, int]:
    """Op types of a graph and how often each occurs (sorted by name)."""
    import onnx

    graph = onnx.load_model_from_string(onnx_bytes).graph
    return dict(sorted(Counter(node.op_type for node in graph.node).items()))


def optimized_op_counts(onnx_bytes: bytes) -> dict[str, int]:
    """Op counts of the graph ONNX Runtime actually runs (CPU provider, ``ORT_ENABLE_ALL``)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="ort-opt-") as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        options.log_severity_level = 3  # silence "hardware specific optimizations" warning
        ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        return graph_op_counts(Path(options.optimized_model_filepath).read_bytes())


def int8_op_counts(onnx_bytes: bytes) -> dict[str, Any]:
    """Evidence that a graph runs integer kernels: Q/DQ nodes in the stored graph, and integer
    vs float conv/matmul kernels in ORT's optimised CPU graph."""
    stored = graph_op_counts(onnx_bytes)
    optimized = optimized_op_counts(onnx_bytes)
    return {
        "quantize_linear": stored.get("QuantizeLinear", 0),
        "dequantize_linear": stored.get("DequantizeLinear", 0),
        "int8_conv_kernels": sum(optimized.get(op, 0) for op in INT8_CONV_OPS),
        "int8_kernels": sum(optimized.get(op, 0) for op in INT8_KERNEL_OPS),
        "float_conv_matmul_kernels": sum(optimized.get(op, 0) for op in FLOAT_CONV_OPS),
        "ort_optimized_ops": optimized,
    }


def calibration_images(train: ImageData, count: int, seed: int) -> torch.Tensor:
    """``count`` seeded random training images (all of them when ``count`` >= len)."""
    if count < 1:
        raise UserError(f"--calibration must be >= 1, got {count}")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    return train.floats(order[:count].sort().values)


def quantize_entry(parent: str | Path, out: str | Path, train: ImageData, test: ImageData,
                   calibration: int = DEFAULT_CALIBRATION, seed: int = 0,
                   activation_type: ActivationType = "uint8",
                   per_channel: bool = True) -> ModelConfig:
    """Write ``out``: the parent as a static int8 ONNX graph (only ``model.onnx``).

    Lineage ``int8`` records the calibration count, format, per_channel, types and seed; metrics
    hold test accuracy measured through ``OnnxPredictor`` (what the server runs), the parent's
    float accuracy and label agreement on the same ``test``, sizes and ``int8_op_counts``.
    """
    parent, out = Path(parent), Path(out)
    if activation_type not in ("uint8", "int8"):
        raise UserError(f"activation type must be uint8 or int8, got {activation_type!r}")
    parent_config, parent_ref = resolve_parent(parent, out)
    model, _ = load_model(parent)
    images = calibration_images(train, calibration, seed)
    float_bytes = export_onnx(model, parent_config.input_shape)
    int8_bytes = quantize_onnx(float_bytes, images, per_channel=per_channel,
                               activation_type=activation_type)
    ops = int8_op_counts(int8_bytes)
    if ops["int8_conv_kernels"] == 0:
        raise UserError(f"int8 quantisation of {parent} produced no integer conv kernels "
                        f"(ORT optimised graph: {ops['ort_optimized_ops']})")
    before = evaluate(model, test)
    config = derive_config(parent_config, parent_ref, out.name, "int8", {
        "calibration": len(images), "calibration_source": "train", "format": "QDQ",
        "per_channel": per_channel, "weight_type": "int8", "activation_type": activation_type,
        "calibrate_method": "minmax", "tool": "onnxruntime.quantization.quantize_static"},
        seed=seed, preprocessing=parent_config.preprocessing)
    config = config.model_copy(update={"backend": "onnx"})
    with atomic_dir(out) as tmp:
        (tmp / ONNX_FILE).write_bytes(int8_bytes)
        write_json(tmp / CONFIG_FILE, config.model_dump(mode="json"))
        predictor = OnnxPredictor(tmp)
        after = evaluate(predictor.logits, test)
        metrics = {"test_top1": round(after.top1, 4), "test_top5": round(after.top5, 4),
                   **comparison_metrics(before, after, len(test)),
                   "onnx_bytes": len(int8_bytes), "parent_onnx_bytes": len(float_bytes),
                   "ort_providers": predictor.providers, **ops}
        config = config.model_copy(update={"metrics": metrics})
        write_json(tmp / CONFIG_FILE, config.model_dump(mode="json"))
    return config
