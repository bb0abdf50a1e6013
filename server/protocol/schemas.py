"""Wire schemas of the Open Inference Protocol subset this server speaks (pydantic).

Requests are strict: unknown fields are rejected (``extra="forbid"``), numbers are not coerced
from strings or booleans. Responses carry labels (INT64 class indices) and nothing else about a
prediction: no scores, logits or probabilities anywhere.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

# ---- requests ---------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputParameters(_Strict):
    """``$request_input.parameters``: only the binary tensor extension's size."""

    binary_data_size: StrictInt | None = Field(None, ge=0)


class RequestInput(_Strict):
    """``$request_input``: one tensor, as JSON ``data`` or as binary after the JSON header."""

    name: StrictStr
    shape: list[StrictInt] = Field(max_length=16)
    datatype: StrictStr
    parameters: InputParameters | None = None
    data: list[Any] | None = None


class OutputParameters(_Strict):
    """``$request_output.parameters``: ``binary_data`` asks for the output as binary."""

    binary_data: StrictBool | None = None


class RequestOutput(_Strict):
    name: StrictStr
    parameters: OutputParameters | None = None


class RequestParameters(_Strict):
    """``$inference_request.parameters``: ``binary_data_output`` (binary extension); ``priority``
    and ``timeout`` are accepted as tritonclient may send them, and ignored."""

    binary_data_output: StrictBool | None = None
    priority: StrictInt | None = None
    timeout: StrictInt | None = None


class InferenceRequest(_Strict):
    """``$inference_request``. ``model_name`` / ``model_version`` are tolerated (Triton's
    examples send them) and must then name this model and version 1."""

    id: StrictStr | None = None
    model_name: StrictStr | None = None
    model_version: StrictStr | None = None
    parameters: RequestParameters | None = None
    inputs: list[RequestInput] = Field(max_length=16)
    outputs: list[RequestOutput] | None = Field(None, max_length=16)


# ---- responses --------------------------------------------------------------------------------


class ErrorResponse(BaseModel):
    error: str


class LiveResponse(BaseModel):
    live: bool


class ReadyResponse(BaseModel):
    ready: bool
    error: str | None = None
    #: models that cannot be served (without --exit-on-error), with the kind of failure
    unavailable: dict[str, str] | None = None


class ModelReadyResponse(BaseModel):
    name: str
    ready: bool
    error: str | None = None


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelParameters(BaseModel):
    """Beyond OIP's model metadata: how this server runs the model."""

    backend: str
    device: str
    providers: list[str]
    preprocessing: dict[str, Any] | None
    #: where the preprocessing runs: "onnx-graph" (inside the serving graph), "torch", or None
    preprocessing_runs: str | None = None
    max_batch_size: int
    class_names: list[str]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: ModelParameters


class OutputTensorParameters(BaseModel):
    binary_data_size: int


class ResponseOutput(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    data: list[int] | None = None
    parameters: OutputTensorParameters | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]


class ClassifyResponse(BaseModel):
    model_name: str
    labels: list[int]
    names: list[str]
