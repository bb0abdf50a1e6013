"""Decode inference requests into image tensors and encode label responses.

A model declares two alternative inputs (a request sends exactly one of them) and one output:

| tensor   | datatype | shape          | meaning                                        |
|----------|----------|----------------|------------------------------------------------|
| images   | UINT8    | [-1, H, W, C]  | 8-bit images as they are on disk; x / 255      |
| input    | FP32     | [-1, C, H, W]  | float images in [0, 1] (the models' own input) |
| label    | INT64    | [-1]           | predicted class index, the only output         |

JSON ``data`` may be flat (row-major, as tritonclient sends it) or nested. The binary tensor
extension (Triton): ``Inference-Header-Content-Length`` gives the JSON header's length, each
binary input has ``parameters.binary_data_size`` and its bytes follow the header in input order,
little-endian; ``outputs[].parameters.binary_data`` or the request parameter
``binary_data_output`` asks for the labels as binary (8 bytes each, little-endian INT64).
A raw binary request (``Inference-Header-Content-Length: 0``) is refused: with two declared
inputs the tensor cannot be deduced from the byte count.

Everything a client can get wrong raises ``BadRequestError`` (or ``UnsupportedMediaTypeError``)
with a message that names the field; nothing here raises anything else for client input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from pydantic import ValidationError

from models.config import MODEL_VERSION
from server.core.errors import BadRequestError, UnsupportedMediaTypeError, validation_message
from server.protocol.schemas import InferenceRequest, RequestInput, TensorMetadata

UINT8_INPUT, FP32_INPUT, OUTPUT = "images", "input", "label"
HEADER_LENGTH = "Inference-Header-Content-Length"
_JSON_TYPES = {"", "application/json"}
_INFER_TYPES = _JSON_TYPES | {"application/octet-stream"}


@dataclass(frozen=True)
class Signature:
    """What a served model takes: image geometry and the batch limit."""

    channels: int
    height: int
    width: int
    max_batch_size: int

    def inputs(self) -> list[TensorMetadata]:
        return [
            TensorMetadata(name=UINT8_INPUT, datatype="UINT8",
                           shape=[-1, self.height, self.width, self.channels]),
            TensorMetadata(name=FP32_INPUT, datatype="FP32",
                           shape=[-1, self.channels, self.height, self.width]),
        ]

    @staticmethod
    def outputs() -> list[TensorMetadata]:
        return [TensorMetadata(name=OUTPUT, datatype="INT64", shape=[-1])]


@dataclass(frozen=True)
class DecodedRequest:
    images: np.ndarray  # float32 [N, C, H, W] in [0, 1], C-contiguous
    request_id: str | None
    binary_output: bool


# ---- headers ----------------------------------------------------------------------------------


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_infer_content_type(content_type: str | None) -> None:
    kind = media_type(content_type)
    if kind not in _INFER_TYPES:
        raise UnsupportedMediaTypeError(
            f"unsupported Content-Type {kind!r}: send application/json (JSON request) or "
            "application/octet-stream (binary tensor extension)")


def parse_header_length(value: str | None, body_size: int) -> int | None:
    """The JSON header's length from ``Inference-Header-Content-Length`` (None: all JSON)."""
    if value is None:
        return None
    text = value.strip()
    # str.isdigit also accepts digits such as "\xb2" that int() refuses: ASCII only
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise BadRequestError(f"{HEADER_LENGTH} must be a non-negative integer")
    length = int(text)
    if length == 0:
        raise BadRequestError(f"raw binary requests ({HEADER_LENGTH}: 0) are not supported: send a "
                              "JSON header naming the input")
    if length > body_size:
        raise BadRequestError(f"{HEADER_LENGTH} ({length}) is larger than the body ({body_size} "
                              "bytes)")
    return length


# ---- request ----------------------------------------------------------------------------------


def parse_request_header(raw: bytes) -> InferenceRequest:
    try:
        return InferenceRequest.model_validate_json(raw)
    except ValidationError as error:
        raise BadRequestError(f"invalid inference request: {validation_message(error.errors())}"
                              ) from None


def decode_infer_request(body: bytes, header_length: str | None, signature: Signature,
                         model_name: str) -> DecodedRequest:
    """Validate a whole ``/infer`` body and turn it into a float image batch."""
    length = parse_header_length(header_length, len(body))
    header = parse_request_header(body if length is None else body[:length])
    binary = memoryview(body)[length:] if length is not None else memoryview(b"")

    if header.model_name is not None and header.model_name != model_name:
        raise BadRequestError(f"model_name {header.model_name!r} in the body does not match "
                              "the URL")
    if header.model_version not in (None, "", MODEL_VERSION):
        raise BadRequestError(f"model_version {header.model_version!r}: only version 1 exists")
    if len(header.inputs) != 1:
        raise BadRequestError(f"expected exactly one input ({UINT8_INPUT!r} UINT8 [N,H,W,C] or "
                              f"{FP32_INPUT!r} FP32 [N,C,H,W]); got {len(header.inputs)}")
    images = _decode_input(header.inputs[0], binary, length is not None, signature)
    binary_output = _wants_binary_output(header)
    return DecodedRequest(images=images, request_id=header.id, binary_output=binary_output)


def _wants_binary_output(header: InferenceRequest) -> bool:
    default = bool(header.parameters and header.parameters.binary_data_output)
    if not header.outputs:
        return default
    seen: set[str] = set()
    binary = default
    for output in header.outputs:
        if output.name != OUTPUT:
            raise BadRequestError(f"unknown output {output.name!r}: this model has one output "
                                  f"{OUTPUT!r} (INT64 class index)")
        if output.name in seen:
            raise BadRequestError(f"output {output.name!r} requested twice")
        seen.add(output.name)
        if output.parameters and output.parameters.binary_data is not None:
            binary = output.parameters.binary_data
    return binary


def _expected_shape(tensor: RequestInput, signature: Signature) -> tuple[int, ...]:
    """Check name, datatype and shape; the shape is [N, H, W, C] or [N, C, H, W]."""
    c, h, w = signature.channels, signature.height, signature.width
    expected = {UINT8_INPUT: ("UINT8", "[N,H,W,C]", (h, w, c)),
                FP32_INPUT: ("FP32", "[N,C,H,W]", (c, h, w))}
    if tensor.name not in expected:
        raise BadRequestError(f"unknown input {tensor.name!r}: use {UINT8_INPUT!r} "
                              f"(UINT8 [N,H,W,C]) or {FP32_INPUT!r} (FP32 [N,C,H,W])")
    datatype, layout, dims = expected[tensor.name]
    if tensor.datatype != datatype:
        raise BadRequestError(f"input {tensor.name!r} has datatype {datatype}; got "
                              f"{tensor.datatype[:32]!r}")
    shape = tensor.shape
    if len(shape) != 4:
        raise BadRequestError(f"input {tensor.name!r} must have rank 4 {layout}; got rank "
                              f"{len(shape)}")
    n = shape[0]
    if n < 1:
        raise BadRequestError("empty batch: the first dimension must be >= 1" if n == 0 else
                              f"negative batch dimension {n}")
    if tuple(shape[1:]) != dims:
        raise BadRequestError(f"input {tensor.name!r} must have shape {layout} = "
                              f"[N,{','.join(map(str, dims))}] for this model; got {shape}")
    if n > signature.max_batch_size:
        raise BadRequestError(f"batch of {n} images exceeds the server's max batch size "
                              f"{signature.max_batch_size}; split the request")
    return (n, *dims)


def _decode_input(tensor: RequestInput, binary: memoryview, has_header_length: bool,
                  signature: Signature) -> np.ndarray:
    shape = _expected_shape(tensor, signature)
    count = int(np.prod(shape))
    is_uint8 = tensor.name == UINT8_INPUT
    itemsize = 1 if is_uint8 else 4
    size = tensor.parameters.binary_data_size if tensor.parameters else None

    if size is not None:
        if tensor.data is not None:
            raise BadRequestError(f"input {tensor.name!r} has both 'data' and binary_data_size")
        if not has_header_length:
            raise BadRequestError(f"input {tensor.name!r} has binary_data_size but the request "
                                  f"has no {HEADER_LENGTH} header")
        if size != count * itemsize:
            raise BadRequestError(f"input {tensor.name!r}: binary_data_size is {size} bytes but "
                                  f"shape {list(shape)} of {tensor.datatype} needs "
                                  f"{count * itemsize}")
        if len(binary) != size:
            raise BadRequestError(f"binary data after the JSON header is {len(binary)} bytes; the "
                                  f"inputs declare {size}")
        dtype = np.uint8 if is_uint8 else np.dtype("<f4")
        array = np.frombuffer(binary, dtype=dtype, count=count)
    else:
        if len(binary):
            raise BadRequestError(f"{len(binary)} bytes after the JSON header but no input "
                                  "declares binary_data_size")
        if tensor.data is None:
            raise BadRequestError(f"input {tensor.name!r} has neither 'data' nor binary_data_size")
        array = _json_array(tensor, count, is_uint8)

    array = array.reshape(shape)
    if is_uint8:
        return uint8_nhwc_to_float(array)
    return fp32_nchw_to_tensor(array, tensor.name)


def _json_array(tensor: RequestInput, count: int, is_uint8: bool) -> np.ndarray:
    try:
        array = np.asarray(tensor.data)
    except (ValueError, TypeError, OverflowError):
        raise BadRequestError(f"input {tensor.name!r}: 'data' is not a regular array of numbers"
                              ) from None
    kind = array.dtype.kind
    if kind not in "iuf" or (is_uint8 and kind == "f"):
        what = "integers 0..255" if is_uint8 else "numbers in [0, 1]"
        raise BadRequestError(f"input {tensor.name!r}: 'data' must hold {what}")
    array = array.reshape(-1)
    if array.size != count:
        raise BadRequestError(f"input {tensor.name!r}: 'data' has {array.size} values; shape "
                              f"{tensor.shape} needs {count}")
    if is_uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise BadRequestError(f"input {tensor.name!r}: UINT8 values must be integers 0..255")
        return array.astype(np.uint8)
    return _check_unit_range(array.astype(np.float64), tensor.name).astype(np.float32)


def _check_unit_range(array: np.ndarray, name: str) -> np.ndarray:
    if not np.isfinite(array).all():
        raise BadRequestError(f"input {name!r}: FP32 values must be finite (found NaN or infinity)")
    if array.size and (array.min() < 0.0 or array.max() > 1.0):
        raise BadRequestError(f"input {name!r}: FP32 pixel values must lie in [0, 1]")
    return array


def uint8_nhwc_to_float(array: np.ndarray) -> np.ndarray:
    """UINT8 [N, H, W, C] -> float32 [N, C, H, W] = x / 255 (correctly rounded, contiguous)."""
    out = np.ascontiguousarray(array.transpose(0, 3, 1, 2), dtype=np.float32)
    np.divide(out, np.float32(255.0), out=out)
    return out


def fp32_nchw_to_tensor(array: np.ndarray, name: str = FP32_INPUT) -> np.ndarray:
    """FP32 [N, C, H, W] checked to lie in [0, 1]: a C-contiguous float32 copy."""
    _check_unit_range(array, name)
    return np.array(array, dtype=np.float32, order="C", copy=True)


# ---- response ---------------------------------------------------------------------------------


def encode_infer_response(model_name: str, request_id: str | None, labels: np.ndarray,
                          binary: bool) -> tuple[bytes, dict[str, str], str]:
    """(body, extra headers, media type) of an inference response holding only labels."""
    labels = np.ascontiguousarray(labels, dtype="<i8")
    output: dict[str, object] = {"name": OUTPUT, "datatype": "INT64", "shape": [len(labels)]}
    if binary:
        output["parameters"] = {"binary_data_size": labels.nbytes}
    else:
        output["data"] = labels.tolist()
    response: dict[str, object] = {"model_name": model_name, "model_version": MODEL_VERSION}
    if request_id is not None:
        response["id"] = request_id
    response["outputs"] = [output]
    head = json.dumps(response, separators=(",", ":")).encode()
    if not binary:
        return head, {}, "application/json"
    return head + labels.tobytes(), {HEADER_LENGTH: str(len(head))}, "application/octet-stream"
