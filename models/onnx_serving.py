"""The serving graph: CSRP, the model and the argmax in one ONNX graph (no torch needed).

Built at load time from an entry's ``model.onnx`` (inputs ``input`` float [N, C, H, W] in
[0, 1], output ``logits``)::

    input [N, C, H, W] --+-- CSRP prefix (tables by offset, two GatherElements, Where) --+
    offsets int64 [N, 2] +                                                             |
                                         model (prefixed "model/") <-------------------+
                                           -> ArgMax(axis 1) -> label int64 [N]

Seed paper: "Mitigating Query-based Neural Network Fingerprinting via Data Augmentation",
Algorithm 1. The prefix uses the same tables as the torch transform (``models.csrp_tables``):
``out[n, c, h, w] = input[n, c, rows[x1_n, h], cols[y1_n, w]]`` where both keep-masks hold, and
0 elsewhere; so for the same offsets its pixels are bit-identical to ``models.transforms.csrp``
(tested). The offsets stay an input: the server draws them, which keeps its draw-order contract
and ``--seed`` replay. ONNX Runtime then runs preprocessing and model in one session run, on
whichever execution provider the session has, and the logits never leave the graph.

Without preprocessing the graph is the model plus the argmax, with ``input`` as its one input.
With ``output="logits"`` the argmax is left out and the graph returns the logits (float32
[N, K], output ``logits``): the server needs them for an entry with a query detector
(``models.detector``), which it applies to them before anything is answered.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.config import INPUT_NAME, OUTPUT_NAME
from models.csrp_tables import csrp_tables

__all__ = ["LABEL_NAME", "MIN_OPSET", "OFFSETS_NAME", "csrp_prefix", "serving_graph"]

OFFSETS_NAME, LABEL_NAME = "offsets", "label"
#: Unsqueeze with axes as an input (opset 13) is what the prefix is written in.
MIN_OPSET = 13
_MODEL_PREFIX = "model/"


def _opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ValueError("the model graph imports no default-domain (ai.onnx) opset")


def csrp_prefix(input_shape: tuple[int, int, int], sigma: float, p: int,
                opset: int, ir_version: int) -> onnx.ModelProto:
    """A graph ``(input, offsets) -> csrp/image``: CSRP with the given offsets (see module doc).

    ``input_shape`` is ``(C, H, W)``; raises ``ValueError`` when ``sigma`` / ``p`` do not fit it.
    """
    channels, height, width = input_shape
    tables = csrp_tables(height, width, float(sigma), p)
    constants = [
        numpy_helper.from_array(np.ascontiguousarray(tables.rows), "csrp/rows"),
        numpy_helper.from_array(np.ascontiguousarray(tables.rows_keep), "csrp/rows_keep"),
        numpy_helper.from_array(np.ascontiguousarray(tables.cols), "csrp/cols"),
        numpy_helper.from_array(np.ascontiguousarray(tables.cols_keep), "csrp/cols_keep"),
        numpy_helper.from_array(np.array(0, dtype=np.int64), "csrp/zero_index"),
        numpy_helper.from_array(np.array(1, dtype=np.int64), "csrp/one_index"),
        numpy_helper.from_array(np.array([1, 3], dtype=np.int64), "csrp/axes_rows"),
        numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "csrp/axes_cols"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "csrp/zero_pixel"),
    ]
    node = helper.make_node
    nodes = [
        node("Gather", [OFFSETS_NAME, "csrp/zero_index"], ["csrp/x1"], axis=1),
        node("Gather", [OFFSETS_NAME, "csrp/one_index"], ["csrp/y1"], axis=1),
        # per-sample source rows [N, H] and columns [N, W], and their keep masks
        node("Gather", ["csrp/rows", "csrp/x1"], ["csrp/row_src"], axis=0),
        node("Gather", ["csrp/cols", "csrp/y1"], ["csrp/col_src"], axis=0),
        node("Gather", ["csrp/rows_keep", "csrp/x1"], ["csrp/row_keep"], axis=0),
        node("Gather", ["csrp/cols_keep", "csrp/y1"], ["csrp/col_keep"], axis=0),
        node("Shape", [INPUT_NAME], ["csrp/shape"]),
        # rows: index [N, C, H, W] = row_src[n, h]; gather along H
        node("Unsqueeze", ["csrp/row_src", "csrp/axes_rows"], ["csrp/row_src4"]),
        node("Expand", ["csrp/row_src4", "csrp/shape"], ["csrp/row_index"]),
        node("GatherElements", [INPUT_NAME, "csrp/row_index"], ["csrp/by_rows"], axis=2),
        # columns: index [N, C, H, W] = col_src[n, w]; gather along W
        node("Unsqueeze", ["csrp/col_src", "csrp/axes_cols"], ["csrp/col_src4"]),
        node("Expand", ["csrp/col_src4", "csrp/shape"], ["csrp/col_index"]),
        node("GatherElements", ["csrp/by_rows", "csrp/col_index"], ["csrp/gathered"], axis=3),
        # zero the padding: keep [N, 1, H, W] = row_keep[n, h] & col_keep[n, w]
        node("Unsqueeze", ["csrp/row_keep", "csrp/axes_rows"], ["csrp/row_keep4"]),
        node("Unsqueeze", ["csrp/col_keep", "csrp/axes_cols"], ["csrp/col_keep4"]),
        node("And", ["csrp/row_keep4", "csrp/col_keep4"], ["csrp/keep"]),
        node("Where", ["csrp/keep", "csrp/gathered", "csrp/zero_pixel"], ["csrp/image"]),
    ]
    graph = helper.make_graph(
        nodes, "csrp",
        inputs=[
            helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT,
                                          ["batch", channels, height, width]),
            helper.make_tensor_value_info(OFFSETS_NAME, TensorProto.INT64, ["batch", 2]),
        ],
        outputs=[helper.make_tensor_value_info("csrp/image", TensorProto.FLOAT,
                                               ["batch", channels, height, width])],
        initializer=constants,
    )
    prefix = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                               producer_name="models.onnx_serving")
    prefix.ir_version = ir_version
    return prefix


def serving_graph(model_bytes: bytes, input_shape: tuple[int, int, int],
                  csrp: tuple[float, int] | None, output: str = "label") -> bytes:
    """The serialised serving graph for an entry's ``model.onnx`` (see module doc).

    ``csrp`` is ``(sigma, p)`` or ``None`` (no preprocessing); ``output`` is ``"label"``
    (default: int64 ``label``) or ``"logits"`` (float32 ``logits``). Raises ``ValueError`` when
    the model graph is not the entry contract (inputs ``input``, output ``logits``) or its
    opset is below ``MIN_OPSET``.
    """
    if output not in ("label", "logits"):
        raise ValueError(f"output must be 'label' or 'logits'; got {output!r}")
    model = onnx.load_model_from_string(model_bytes)
    inputs = [i.name for i in model.graph.input
              if i.name not in {init.name for init in model.graph.initializer}]
    outputs = [o.name for o in model.graph.output]
    if inputs != [INPUT_NAME] or outputs != [OUTPUT_NAME]:
        raise ValueError(f"model graph must have input {INPUT_NAME!r} and output "
                         f"{OUTPUT_NAME!r}; it has inputs {inputs} and outputs {outputs}")
    opset = _opset(model)
    if csrp is not None:
        if opset < MIN_OPSET:
            raise ValueError(f"model graph opset {opset} < {MIN_OPSET}: CSRP stays in torch")
        prefix = csrp_prefix(input_shape, csrp[0], csrp[1], opset, model.ir_version)
        model = onnx.compose.add_prefix(model, _MODEL_PREFIX)
        model = onnx.compose.merge_models(
            prefix, model, io_map=[("csrp/image", _MODEL_PREFIX + INPUT_NAME)])
        logits = _MODEL_PREFIX + OUTPUT_NAME
    else:
        logits = OUTPUT_NAME
    graph = model.graph
    del graph.output[:]
    if output == "logits":
        if logits != OUTPUT_NAME:
            graph.node.append(helper.make_node("Identity", [logits], [OUTPUT_NAME],
                                               name="logits/out"))
        graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT,
                                                          ["batch", "classes"]))
    else:
        graph.node.append(helper.make_node("ArgMax", [logits], [LABEL_NAME], axis=1,
                                           keepdims=0, name="label/argmax"))
        graph.output.append(helper.make_tensor_value_info(LABEL_NAME, TensorProto.INT64,
                                                          ["batch"]))
    onnx.checker.check_model(model)
    return model.SerializeToString()
