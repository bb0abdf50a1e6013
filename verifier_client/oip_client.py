"""A label-only Open Inference Protocol (KServe / Triton "v2") client for the owner's queries.

Works against any server that speaks the protocol, not only ours:

- discovers the model's image input (name, datatype, layout, shape) from
  ``GET /v2/models/{name}`` and prefers UINT8 NHWC (what an image is on the wire), then UINT8
  NCHW, FP32 NCHW, FP32 NHWC;
- sends several images per request (``batch_size``) with the binary tensor extension
  (``Inference-Header-Content-Length`` + ``parameters.binary_data_size``) and falls back to
  JSON ``data`` once if the server rejects binary bodies; a 413 splits the batch in two;
- pools connections (``httpx.AsyncClient`` with ``httpx.Limits``) and bounds the requests in
  flight with a semaphore (``concurrency``);
- retries connection errors, timeouts, 429 and 5xx with exponential backoff and jitter, honouring
  ``Retry-After``; when the retries run out it raises :class:`QueryFailedError`, which callers
  treat as "this query is missing", never as a mismatch;
- accepts only labels: an integer tensor holding exactly N values (shape [N] or [N, 1]).
  Anything else (scores, logits, a wrong count) raises :class:`BadResponseError`.

Every error is a :class:`OIPError` (a ``UserError``: one clear line on the command line).
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib.util
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from models.errors import UserError

__all__ = [
    "BadResponseError",
    "Chunk",
    "InputMismatchError",
    "InputPlan",
    "ModelMetadata",
    "ModelNotFoundError",
    "OIPClient",
    "OIPError",
    "PreparedQuery",
    "QueryFailedError",
    "Repeats",
    "RequestRejectedError",
    "RetryPolicy",
    "ServerUnreachableError",
    "TensorSpec",
    "choose_input",
    "encode_binary",
    "image_shape",
    "labels_from_response",
    "to_wire",
]

# httpcore tries ``import sniffio`` on every request; when it is not installed each failed import
# walks sys.path (about 1 ms of client CPU per request). A ``None`` entry makes that import fail
# at once, with the same outcome (httpcore then assumes asyncio, which is what we run).
if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]

Protocol = Literal["auto", "binary", "json"]
HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_CONTENT_TYPE = "application/octet-stream"
_INTEGER_TYPES = {"INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "UINT8": "<u1",
                  "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8"}
_NUMPY_TYPES = {**_INTEGER_TYPES, "FP16": "<f2", "FP32": "<f4", "FP64": "<f8", "BOOL": "?"}
_LABEL_NAMES = ("label", "labels", "class", "classes", "class_index", "prediction")
#: Decoded-size caps of an answer: metadata, and an inference answer of N labels.
METADATA_LIMIT = 1024 * 1024
ANSWER_BASE, ANSWER_PER_LABEL = 64 * 1024, 32


def _inflater(encoding: str) -> Any:
    """A bounded decompressor for a ``Content-Encoding`` (``None`` for identity)."""
    import zlib

    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise BadResponseError(f"server answered with Content-Encoding {encoding!r}, which was not "
                           "asked for")


class OIPError(UserError):
    """Talking to an Open Inference Protocol server went wrong (one clear line)."""


class ServerUnreachableError(OIPError):
    """No connection to the server (or it never became ready)."""


class ModelNotFoundError(OIPError):
    """The server does not know the model (404)."""


class RequestRejectedError(OIPError):
    """The server refused the request (4xx other than 404/413/429)."""


class BadResponseError(OIPError):
    """The answer is not N integer labels (scores, wrong count, malformed body)."""


class InputMismatchError(OIPError):
    """The images do not fit the model's declared input."""


class QueryFailedError(OIPError):
    """A query still failed after all retries (connection, timeout, 429, 5xx).

    Transient by nature: callers leave that query (repeat) out and report it; it is never a
    mismatch.
    """


# --------------------------------------------------------------------------------------------
# settings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: try ``attempts`` times in all; before try k+1 wait
    ``min(max_backoff_s, backoff_s * 2**k)`` scaled by a uniform factor in
    ``[1 - jitter, 1]``, or the server's ``Retry-After`` (capped at ``max_retry_after_s``) when
    that is longer."""

    attempts: int = 5
    backoff_s: float = 0.25
    max_backoff_s: float = 8.0
    jitter: float = 0.5
    max_retry_after_s: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1; got {self.attempts}")
        if self.backoff_s < 0 or self.max_backoff_s < 0 or not 0 <= self.jitter <= 1:
            raise ValueError("backoff_s, max_backoff_s >= 0 and jitter in [0, 1] required")

    def delay(self, attempt: int, retry_after: float | None = None,
              rng: random.Random | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (0-based)."""
        base = min(self.max_backoff_s, self.backoff_s * (2.0 ** attempt))
        wait = base * (1.0 - self.jitter * (rng or random).random())
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after_s))
        return wait


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; ``None`` when absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# --------------------------------------------------------------------------------------------
# metadata and the input plan
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]

    def describe(self) -> str:
        return f"{self.name!r} {self.datatype} {list(self.shape)}"


@dataclass(frozen=True)
class ModelMetadata:
    """``GET /v2/models/{name}``."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    platform: str = ""
    versions: tuple[str, ...] = ()
    max_batch_size: int | None = None  # from ``parameters.max_batch_size`` when the server says

    @classmethod
    def from_json(cls, data: Any, model: str) -> ModelMetadata:
        meta = _validated(_MetadataAnswer, data, f"metadata of model {model!r}")

        def specs(items: list[_Tensor]) -> tuple[TensorSpec, ...]:
            return tuple(TensorSpec(t.name, t.datatype.upper(), tuple(t.shape)) for t in items)

        limit = (meta.parameters or {}).get("max_batch_size")
        return cls(name=meta.name, inputs=specs(meta.inputs), outputs=specs(meta.outputs),
                   platform=meta.platform or "", versions=tuple(meta.versions or ()),
                   max_batch_size=limit if isinstance(limit, int) and not isinstance(limit, bool)
                   and 0 < limit <= 2**20 else None)


@dataclass(frozen=True)
class InputPlan:
    """How images go to this model: which input, datatype and layout."""

    model: str
    name: str
    datatype: Literal["UINT8", "FP32"]
    layout: Literal["NHWC", "NCHW"]
    item_shape: tuple[int, int, int]  # C, H, W of the images this plan was made for
    num_classes: int | None = None  # answers outside 0..num_classes - 1 are refused

    def wire_shape(self, n: int) -> list[int]:
        c, h, w = self.item_shape
        return [n, h, w, c] if self.layout == "NHWC" else [n, c, h, w]


def _fits(declared: Sequence[int], wanted: Sequence[int]) -> bool:
    return len(declared) == len(wanted) and all(d in (-1, w) for d, w in zip(declared, wanted,
                                                                               strict=True))


def _declared_inputs(meta: ModelMetadata) -> str:
    return ", ".join(spec.describe() for spec in meta.inputs) or "no inputs"


def choose_input(meta: ModelMetadata, image_shape: Sequence[int]) -> InputPlan:
    """Pick the input to send images of ``image_shape`` = (C, H, W) to.

    Preference: UINT8 NHWC, UINT8 NCHW, FP32 NCHW, FP32 NHWC. A 4-d declared shape includes the
    batch dimension (``-1`` or any size); a 3-d one is taken as per-item. ``-1`` matches anything.
    """
    c, h, w = (int(v) for v in image_shape)
    ranked: list[tuple[int, InputPlan]] = []
    preference = {("UINT8", "NHWC"): 0, ("UINT8", "NCHW"): 1, ("FP32", "NCHW"): 2,
                  ("FP32", "NHWC"): 3}
    for spec in meta.inputs:
        if spec.datatype not in ("UINT8", "FP32") or len(spec.shape) not in (3, 4):
            continue
        item = spec.shape[1:] if len(spec.shape) == 4 else spec.shape
        for layout, wanted in (("NHWC", (h, w, c)), ("NCHW", (c, h, w))):
            if _fits(item, wanted):
                plan = InputPlan(meta.name, spec.name, spec.datatype, layout,  # type: ignore[arg-type]
                                 (c, h, w))
                ranked.append((preference[(spec.datatype, layout)], plan))
    if not ranked:
        raise InputMismatchError(
            f"model {meta.name!r} takes input {_declared_inputs(meta)}, which does not "
            f"fit images of C x H x W = {c}x{h}x{w} (as UINT8 NHWC or FP32 NCHW)")
    return min(ranked, key=lambda pair: pair[0])[1]


# --------------------------------------------------------------------------------------------
# request bodies and answers
# --------------------------------------------------------------------------------------------


def image_shape(meta: ModelMetadata) -> tuple[int, int, int] | None:
    """(C, H, W) of the first image input with a fully known size, ``None`` when none declares
    one. UINT8 inputs are read as NHWC and FP32 ones as NCHW unless only the other axis can hold
    channels (1, 3 or 4); a 3-d shape is per item, a 4-d one includes the batch axis."""
    for spec in meta.inputs:
        item = spec.shape[-3:] if len(spec.shape) in (3, 4) else ()
        if len(item) != 3 or -1 in item or spec.datatype not in ("UINT8", "FP32"):
            continue
        nhwc = (item[2], item[0], item[1])
        nchw = (item[0], item[1], item[2])
        if spec.datatype == "UINT8":
            return nhwc if item[2] in (1, 3, 4) else nchw
        return nchw if item[0] in (1, 3, 4) else nhwc
    return None


def to_wire(plan: InputPlan, images: np.ndarray) -> np.ndarray:
    """float [N, C, H, W] in [0, 1] -> the array the plan sends (contiguous)."""
    if plan.datatype == "UINT8":
        array = np.rint(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)
    else:
        array = np.asarray(images, dtype=np.float32)
    if plan.layout == "NHWC":
        array = array.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(array)


def encode_binary(plan: InputPlan, wire: np.ndarray) -> tuple[bytes, int]:
    """The binary tensor extension's request body for ``wire`` (from :func:`to_wire`) and the
    length of its JSON header (the ``Inference-Header-Content-Length`` value)."""
    data = wire.tobytes()
    header = json.dumps({"inputs": [{
        "name": plan.name, "shape": list(wire.shape), "datatype": plan.datatype,
        "parameters": {"binary_data_size": len(data)}}]}).encode()
    return header + data, len(header)


@dataclass
class Chunk:
    """One request's worth of images, encoded once and reused by every repeat."""

    wire: np.ndarray
    _binary: tuple[bytes, int] | None = field(default=None, repr=False)
    _json: bytes | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return int(self.wire.shape[0])

    def binary(self, plan: InputPlan) -> tuple[bytes, int]:
        """Body and header length for the binary tensor extension."""
        if self._binary is None:
            self._binary = encode_binary(plan, self.wire)
        return self._binary

    def json_body(self, plan: InputPlan) -> bytes:
        if self._json is None:
            self._json = json.dumps({"inputs": [{
                "name": plan.name, "shape": list(self.wire.shape), "datatype": plan.datatype,
                "data": self.wire.ravel().tolist()}]}).encode()
        return self._json

    def halves(self) -> list[Chunk]:
        middle = self.n // 2
        return [Chunk(self.wire[:middle]), Chunk(self.wire[middle:])]


@dataclass
class PreparedQuery:
    """A set of images encoded for one model, split into requests of ``batch_size``."""

    plan: InputPlan
    chunks: list[Chunk]
    batch_size: int

    @property
    def n(self) -> int:
        return sum(chunk.n for chunk in self.chunks)


@dataclass(frozen=True)
class Answer:
    """An HTTP answer read in full under a size cap (``OIPClient._request``): status, headers
    and the decoded body."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    reason_phrase: str = ""

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` for anything else, a too-deep nesting included."""
        try:
            return json.loads(self.content)
        except RecursionError:
            raise ValueError("JSON nested too deep") from None

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


def _error_message(response: Answer) -> str:
    try:
        body = response.json()
        if isinstance(body, dict) and "error" in body:
            return str(body["error"])[:200]
    except ValueError:
        pass
    text = response.text.strip().replace("\n", " ")
    return text[:200] or response.reason_phrase


def _says_batch_too_large(response: Answer) -> bool:
    """A 400 that blames the batch size (servers without 413 for it): split and try again."""
    if response.status_code != 400:
        return False
    message = _error_message(response).lower()
    return "batch" in message and any(word in message for word in ("exceed", "too large",
                                                                   "max", "split"))


class _Tensor(BaseModel):
    """One tensor of an OIP answer (metadata or output), as the protocol defines it."""

    model_config = ConfigDict(extra="allow")
    name: StrictStr = Field(max_length=256)
    datatype: StrictStr = Field(max_length=16)
    shape: list[Annotated[StrictInt, Field(ge=-1, le=2**31)]] = Field(max_length=8)
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = None


class _MetadataAnswer(BaseModel):
    """``GET /v2/models/{name}``."""

    model_config = ConfigDict(extra="allow")
    name: StrictStr = Field(max_length=256)
    versions: list[StrictStr] | None = None
    platform: StrictStr | None = None
    inputs: list[_Tensor] = Field(max_length=64)
    outputs: list[_Tensor] = Field(default_factory=list, max_length=64)
    parameters: dict[str, Any] | None = None


class _InferAnswer(BaseModel):
    """``POST /v2/models/{name}/infer``."""

    model_config = ConfigDict(extra="allow")
    model_name: StrictStr | None = None
    outputs: list[_Tensor] = Field(min_length=1, max_length=64)


def _validated(model: type[BaseModel], data: Any, what: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise BadResponseError(f"server answered with malformed {what} ({where}: "
                               f"{first['msg']})") from None


def _parse_outputs(response: Answer) -> list[tuple[_Tensor, np.ndarray | None]]:
    """``[(output, binary array or None)]`` from a JSON or binary-extension answer, validated
    against the protocol (``BadResponseError`` naming the first problem)."""
    content = response.content
    header_length = response.headers.get(HEADER_LENGTH)
    try:
        if header_length is not None:
            split = int(header_length)
            if not 0 < split <= len(content):
                raise ValueError("header length out of range")
            header, blob = json.loads(content[:split]), content[split:]
        else:
            header, blob = json.loads(content), b""
    except (ValueError, RecursionError):
        raise BadResponseError("server answered with a body that is not Open Inference Protocol "
                               "JSON") from None
    answer = _validated(_InferAnswer, header, "inference JSON")
    parsed: list[tuple[_Tensor, np.ndarray | None]] = []
    offset = 0
    for output in answer.outputs:
        size = (output.parameters or {}).get("binary_data_size")
        array = None
        if size is not None:
            dtype = _NUMPY_TYPES.get(output.datatype.upper())
            if dtype is None or isinstance(size, bool) or not isinstance(size, int) \
                    or size < 0 or offset + size > len(blob) or size % np.dtype(dtype).itemsize:
                raise BadResponseError("server answered with a malformed binary output tensor")
            array = np.frombuffer(blob[offset:offset + size], dtype=dtype)
            offset += size
        parsed.append((output, array))
    return parsed


def labels_from_response(response: Answer, n: int, num_classes: int | None = None) -> np.ndarray:
    """Exactly ``n`` integer labels from an inference answer, each in ``0..num_classes - 1``
    when the number of classes is known, else :class:`BadResponseError`."""
    outputs = _parse_outputs(response)
    integer = [pair for pair in outputs if pair[0].datatype.upper() in _INTEGER_TYPES]
    named = [pair for pair in integer if pair[0].name.lower() in _LABEL_NAMES]
    chosen = (named or integer or [None])[0]

    def got() -> str:
        return ", ".join(f"{o.name!r} {o.datatype} {o.shape}" for o, _ in outputs)

    if chosen is None:
        raise BadResponseError(f"server did not answer with {n} labels (got {got()}): a label-only "
                               "model must return an integer tensor [N]")
    output, array = chosen
    if output.shape not in ([n], [n, 1]):
        raise BadResponseError(f"server did not answer with {n} labels (got {got()})")
    if array is None:
        if output.data is None:
            raise BadResponseError(f"server did not answer with {n} labels (output has no data)")
        flat = np.asarray(output.data, dtype=object).ravel()
        if flat.size != n or not all(isinstance(v, int) and not isinstance(v, bool)
                                     and -2**63 <= v < 2**63 for v in flat):
            raise BadResponseError(f"server did not answer with {n} labels (got {flat.size} "
                                   "values, not all 64-bit integers)")
        labels = flat.astype(np.int64)
    else:
        if array.size != n:
            raise BadResponseError(f"server did not answer with {n} labels (got {array.size} "
                                   "values)")
        if array.dtype.kind == "u" and array.size and int(array.max()) >= 2**63:
            raise BadResponseError("server answered a label beyond 64-bit integers")
        labels = array.astype(np.int64)
    if labels.size and (labels.min() < 0 or (num_classes is not None
                                              and labels.max() >= num_classes)):
        bad = int(labels[(labels < 0) | (labels >= (num_classes or 2**62))][0])
        raise BadResponseError(f"server answered label {bad}, outside the model's classes "
                               f"0..{(num_classes or 0) - 1}" if num_classes else
                               f"server answered a negative label ({bad})")
    return labels


@dataclass
class Repeats:
    """What :meth:`OIPClient.repeat` got for one prepared query: the label arrays of the
    answered repeats, and why the others failed."""

    answers: list[np.ndarray] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def rates(self, expected: np.ndarray) -> list[float]:
        """The matching rate of every answered repeat against ``expected`` labels."""
        expected = np.asarray(expected)
        return [float(np.mean(labels == expected)) for labels in self.answers]


def _first_error(group: BaseExceptionGroup) -> BaseException:
    """The error to report from a task group: the first :class:`OIPError`, else the first."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _first_error(error)
        if isinstance(error, OIPError):
            return error
    leaf = group.exceptions[0]
    return _first_error(leaf) if isinstance(leaf, BaseExceptionGroup) else leaf


# --------------------------------------------------------------------------------------------
# the client
# --------------------------------------------------------------------------------------------


class OIPClient:
    """Async Open Inference Protocol client. Use as ``async with OIPClient(url) as client``.

    Args:
        url: server root, e.g. ``http://127.0.0.1:8000`` (the ``/v2/...`` paths are appended).
        batch_size: images per inference request (default 100).
        concurrency: requests in flight at most (default 8); also the connection pool size.
        timeout_s: per-request timeout (connect is capped at 5 s); also the bound on one whole
            try, headers and body together (a trickling server cannot hold a query longer).
        retry: :class:`RetryPolicy` for connection errors, timeouts, 429 and 5xx.
        protocol: ``"auto"`` (binary, falling back to JSON once if refused), ``"binary"`` or
            ``"json"``.
        unreachable_after_s: circuit breaker: once no HTTP answer at all has come for this many
            seconds, a connection error raises :class:`ServerUnreachableError` (not retried)
            instead of retrying a dead server. Default 30.
        transport: an ``httpx`` transport (tests: ``httpx.MockTransport``).
    """

    def __init__(self, url: str, *, batch_size: int = 100, concurrency: int = 8,
                 timeout_s: float = 30.0, retry: RetryPolicy | None = None,
                 protocol: Protocol = "auto", unreachable_after_s: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        url = url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise OIPError(f"URL must start with http:// or https://; got {url!r}")
        if batch_size < 1 or concurrency < 1:
            raise OIPError("batch size and concurrency must be >= 1")
        if protocol not in ("auto", "binary", "json"):
            raise OIPError(f"protocol must be auto, binary or json; got {protocol!r}")
        self.url = url
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        self.protocol: Protocol = protocol
        self.requests_sent = 0
        self.retries = 0
        self.answered = 0  # HTTP answers of any status
        self.unreachable_after_s = unreachable_after_s
        self.total_timeout_s = timeout_s
        self._last_answer = time.monotonic()
        self._rng = random.Random()
        self._semaphore = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))
        self._http = httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout,
                                       transport=transport)

    async def __aenter__(self) -> OIPClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ---------------------------------------------------------------- HTTP with retries

    async def _request(self, method: str, path: str, limit: int = METADATA_LIMIT,
                       **kwargs: Any) -> Answer:
        """One request, retried on transport errors, timeouts, 429 and 5xx (except 501).

        Each try is bounded as a whole (connect, headers and body: ``total_timeout_s``; a
        server that trickles its answer a byte a second times out like a silent one) and its
        decoded body by ``limit`` bytes (``BadResponseError`` past it, compressed or not).
        """
        last = ""
        for attempt in range(self.retry.attempts):
            retry_after = None
            try:
                self.requests_sent += 1
                async with asyncio.timeout(self.total_timeout_s):
                    response = await self._read(method, path, limit, **kwargs)
            except (httpx.TransportError, TimeoutError) as error:
                last = (f"no complete answer within {self.total_timeout_s:g} s"
                        if isinstance(error, TimeoutError)
                        else f"{type(error).__name__}: {error}".rstrip(": "))
                silent = time.monotonic() - self._last_answer
                if silent > self.unreachable_after_s:
                    raise ServerUnreachableError(
                        f"no answer from {self.url} for {silent:.0f} s (circuit breaker at "
                        f"{self.unreachable_after_s:g} s; last error {last})") from None
            else:
                self.answered += 1
                self._last_answer = time.monotonic()
                status = response.status_code
                if status != 429 and (status < 500 or status == 501):
                    return response
                last = f"HTTP {status}: {_error_message(response)}"
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if attempt + 1 < self.retry.attempts:
                self.retries += 1
                await asyncio.sleep(self.retry.delay(attempt, retry_after, self._rng))
        raise QueryFailedError(f"{method} {self.url}{path} failed after {self.retry.attempts} "
                               f"attempt(s): {last}")

    async def _read(self, method: str, path: str, limit: int, **kwargs: Any) -> Answer:
        """The whole answer, its body inflated here (gzip, deflate) so that no more than
        ``limit`` decoded bytes are ever held (a 300 KB gzip bomb stops at the cap)."""
        headers = {**kwargs.pop("headers", {}), "Accept-Encoding": "gzip, deflate"}
        async with self._http.stream(method, path, headers=headers, **kwargs) as response:
            if response.is_stream_consumed:  # read in full by the transport (a test's mock)
                if len(response.content) > limit:
                    raise BadResponseError(f"{method} {path}: the answer is larger than the "
                                           f"{limit} bytes this request can need")
                return Answer(response.status_code, response.headers, response.content,
                              response.reason_phrase)
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            inflater = _inflater(encoding)
            body = bytearray()
            async for piece in response.aiter_raw():
                chunk = piece if inflater is None else inflater.decompress(
                    piece, limit + 1 - len(body))
                body += chunk
                if len(body) > limit or (inflater is not None and inflater.unconsumed_tail):
                    raise BadResponseError(f"{method} {path}: the answer is larger than the "
                                           f"{limit} bytes this request can need")
            if inflater is not None:
                body += inflater.flush(limit + 1 - len(body))
                if len(body) > limit:
                    raise BadResponseError(f"{method} {path}: the answer is larger than the "
                                           f"{limit} bytes this request can need")
            return Answer(response.status_code, response.headers, bytes(body),
                          response.reason_phrase)

    # ---------------------------------------------------------------- health and metadata

    async def check_ready(self) -> None:
        """``GET /v2/health/ready``; :class:`ServerUnreachableError` unless it answers 200."""
        try:
            response = await self._request("GET", "/v2/health/ready")
        except (QueryFailedError, ServerUnreachableError) as error:
            raise ServerUnreachableError(f"cannot reach an inference server at {self.url} "
                                         f"({str(error).split(': ', 1)[-1]})") from None
        if response.status_code != 200:
            raise ServerUnreachableError(f"{self.url} is not a ready Open Inference Protocol "
                                         f"server (GET /v2/health/ready answered "
                                         f"{response.status_code})")

    async def wait_ready(self, seconds: float, every_s: float = 1.0) -> None:
        """Poll ``GET /v2/health/ready`` until it answers 200, at most ``seconds``
        (:class:`ServerUnreachableError` after that): a client started beside its server (a
        compose stack) waits for the models to load without relying on the engine's health
        conditions."""
        deadline = time.monotonic() + seconds
        last = "no answer"
        while True:
            try:
                async with asyncio.timeout(max(1.0, min(5.0, deadline - time.monotonic()))):
                    response = await self._http.get("/v2/health/ready")
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except (httpx.TransportError, TimeoutError) as error:
                last = type(error).__name__
            if time.monotonic() + every_s > deadline:
                raise ServerUnreachableError(f"{self.url} was not ready within {seconds:g} s "
                                             f"({last})")
            await asyncio.sleep(every_s)

    async def model_metadata(self, model: str) -> ModelMetadata:
        """``GET /v2/models/{model}``; :class:`ModelNotFoundError` on 404."""
        try:
            response = await self._request("GET", f"/v2/models/{model}")
        except QueryFailedError as error:
            raise ServerUnreachableError(str(error)) from None
        except BadResponseError as error:
            raise BadResponseError(f"model {model!r}: {error}") from None
        if response.status_code == 404:
            raise ModelNotFoundError(f"model {model!r} not found at {self.url} "
                                     f"(server: {_error_message(response)})")
        if response.status_code != 200:
            raise RequestRejectedError(f"GET /v2/models/{model} answered {response.status_code}: "
                                       f"{_error_message(response)}")
        try:
            body = response.json()
        except ValueError:
            raise BadResponseError(f"model {model!r}: metadata is not JSON") from None
        return ModelMetadata.from_json(body, model)

    # ---------------------------------------------------------------- inference

    def prepare(self, meta: ModelMetadata, images: Any,
                num_classes: int | None = None) -> PreparedQuery:
        """Encode float images [N, C, H, W] in [0, 1] (numpy or torch) for ``meta``'s model once;
        :class:`InputMismatchError` when they do not fit its input. With ``num_classes``, an
        answered label outside ``0..num_classes - 1`` is a protocol violation."""
        array = images.detach().cpu().numpy() if hasattr(images, "detach") else images
        array = np.asarray(array)
        if array.ndim != 4 or array.shape[0] == 0:
            raise InputMismatchError(f"images must be [N, C, H, W] with N >= 1; got "
                                     f"{list(array.shape)}")
        plan = choose_input(meta, array.shape[1:])
        if num_classes is not None:
            plan = replace(plan, num_classes=int(num_classes))
        wire = to_wire(plan, array)
        size = min(self.batch_size, meta.max_batch_size or self.batch_size)
        chunks = [Chunk(wire[i:i + size]) for i in range(0, len(wire), size)]
        return PreparedQuery(plan, chunks, size)

    async def _post(self, plan: InputPlan, chunk: Chunk, protocol: str) -> Answer:
        path = f"/v2/models/{plan.model}/infer"
        if protocol == "binary":
            body, header_length = chunk.binary(plan)
            headers = {HEADER_LENGTH: str(header_length), "Content-Type": BINARY_CONTENT_TYPE}
        else:
            body, headers = chunk.json_body(plan), {"Content-Type": "application/json"}
        # labels need ~25 bytes each as JSON, 8 in binary; the rest is the header
        return await self._request("POST", path, limit=ANSWER_BASE + ANSWER_PER_LABEL * chunk.n,
                                   content=body, headers=headers)

    async def _infer_chunk(self, plan: InputPlan, chunk: Chunk) -> np.ndarray:
        async with self._semaphore:
            protocol = "json" if self.protocol == "json" else "binary"
            response = await self._post(plan, chunk, protocol)
            if (self.protocol == "auto" and protocol == "binary"
                    and response.status_code in (400, 415, 501)
                    and not _says_batch_too_large(response)):
                fallback = await self._post(plan, chunk, "json")  # maybe binary is the problem
                if fallback.status_code == 200:
                    self.protocol = "json"  # this server takes JSON only: stop trying binary
                response = fallback
        status = response.status_code
        if status == 200:
            if self.protocol == "auto":
                self.protocol = "binary"
            return labels_from_response(response, chunk.n, plan.num_classes)
        if chunk.n > 1 and (status == 413 or _says_batch_too_large(response)):
            halves = await asyncio.gather(*(self._infer_chunk(plan, c) for c in chunk.halves()))
            return np.concatenate(halves)
        if status == 404:
            raise ModelNotFoundError(f"model {plan.model!r} not found at {self.url} "
                                     f"(server: {_error_message(response)})")
        raise RequestRejectedError(f"{plan.model} at {self.url} refused {chunk.n} image(s) "
                                   f"{plan.datatype} {plan.wire_shape(chunk.n)} with "
                                   f"{status}: {_error_message(response)}")

    async def infer_prepared(self, prepared: PreparedQuery) -> np.ndarray:
        """Labels int64 [N] for all images of ``prepared`` (its requests run concurrently,
        at most ``concurrency`` in flight across the client). :class:`QueryFailedError` if any
        request outlasts its retries."""
        parts = await asyncio.gather(*(self._infer_chunk(prepared.plan, chunk)
                                       for chunk in prepared.chunks))
        return np.concatenate(parts)

    async def repeat(self, prepared: Sequence[PreparedQuery], repeats: int,
                     on_done: Callable[[], None] | None = None,
                     into: list[Repeats] | None = None) -> list[Repeats]:
        """Send every prepared query ``repeats`` times; per query the answers and failures.

        Repeats are created round-robin (repeat ``r`` of every query before repeat ``r + 1``),
        so an outage part-way hits all queries alike; at most ``concurrency`` requests are in
        flight. A repeat that still fails after the retries (:class:`QueryFailedError`) is left
        out and its reason kept: never scored as a mismatch. Any other error (unknown model,
        a refused request, ...) cancels the rest and propagates. ``on_done`` is called after
        every finished repeat, answered or failed. An answer that breaks the protocol
        (:class:`BadResponseError`: malformed, too large, labels outside the classes) counts as
        a failed repeat with its reason. With ``into`` (one ``Repeats`` per query) the
        results are collected there as they come, so a caller keeps them when an error ends
        the run part-way.
        """
        results = into if into is not None else [Repeats() for _ in prepared]

        async def one(index: int) -> None:
            try:
                labels = await self.infer_prepared(prepared[index])
            except (QueryFailedError, BadResponseError) as error:
                # a malformed or impossible answer is a failed query, never a mismatch
                results[index].failures.append(str(error))
            else:
                results[index].answers.append(labels)
            if on_done is not None:
                on_done()

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(repeats):
                    for index in range(len(prepared)):
                        group.create_task(one(index))
        except BaseExceptionGroup as errors:
            raise _first_error(errors) from None
        return results

    async def infer(self, model: str, images: Any,
                    meta: ModelMetadata | None = None) -> np.ndarray:
        """Labels int64 [N] of float images [N, C, H, W] in [0, 1] (metadata fetched if needed)."""
        meta = meta or await self.model_metadata(model)
        return await self.infer_prepared(self.prepare(meta, images))
