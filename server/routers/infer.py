"""``POST /v2/models/{name}/infer`` (also under ``/versions/1``): JSON and binary tensors in,
INT64 labels out (JSON ``data`` or binary when asked). See ``server.protocol.codec``. Bodies
may be gzip or deflate compressed (``server.protocol.compression``)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from server.core.errors import ApiError, UnavailableError
from server.deps import NAME_PARAMETER, VERSION_PARAMETER, model_of
from server.pipeline.served_model import ServedModel
from server.protocol.codec import (
    HEADER_LENGTH,
    check_infer_content_type,
    decode_infer_request,
    encode_infer_response,
)
from server.protocol.compression import content_encoding, inflate
from server.protocol.schemas import ErrorResponse, InferenceResponse

router = APIRouter(prefix="/v2/models", tags=["infer"])

#: Bodies above this are decoded in a worker thread so the event loop keeps serving.
_OFFLOAD_BYTES = 256 * 1024

#: The request body as OpenAPI shows it (the route reads the raw body itself, so that one
#: decoder serves JSON and binary tensors; ``server.main`` adds InferenceRequest's schema).
_BODY: dict = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}},
    "application/octet-stream": {"schema": {
        "type": "string", "format": "binary",
        "description": "binary tensor extension: the JSON InferenceRequest (its length in the "
                       f"{HEADER_LENGTH} header), then each input's bytes (little-endian) "
                       "in input order"}}}},
    "parameters": [NAME_PARAMETER,
                   {"name": HEADER_LENGTH, "in": "header", "required": False,
                    "schema": {"type": "integer", "minimum": 1},
                    "description": "length of the JSON header of a binary request"}]}
_VERSIONED_BODY: dict = {**_BODY, "parameters": [*_BODY["parameters"], VERSION_PARAMETER]}

_RESPONSES: dict[int | str, dict] = {
    200: {"content": {"application/octet-stream": {}},
          "description": "labels as JSON, or binary after the JSON header when asked"},
    **{code: {"model": ErrorResponse} for code in (400, 404, 413, 415, 503)},
}


async def run_infer(model: ServedModel, request: Request) -> Response:
    model.metrics.requests.inc()
    start = time.perf_counter()
    try:
        headers = request.headers
        check_infer_content_type(headers.get("content-type"))
        encoding = content_encoding(headers.get("content-encoding"))
        if not model.ready:
            raise UnavailableError(f"model {model.name!r} is not ready")
        body = await request.body()
        header_length = headers.get(HEADER_LENGTH)
        if encoding is not None:
            body = await _inflated(body, encoding, header_length, model)
        if len(body) > _OFFLOAD_BYTES:
            decoded = await run_in_threadpool(decode_infer_request, body, header_length,
                                              model.signature, model.name)
        else:
            decoded = decode_infer_request(body, header_length, model.signature, model.name)
        labels = await model.infer(decoded.images)
        content, extra, media_type = encode_infer_response(model.name, decoded.request_id,
                                                           labels, decoded.binary_output)
    except ApiError as error:
        model.metrics.failure(error.reason, time.perf_counter() - start)
        raise
    except ClientDisconnect:  # the client left mid-body: no server error, nobody to answer
        model.metrics.failure("client_disconnect", time.perf_counter() - start)
        raise
    except Exception:
        model.metrics.failure("internal", time.perf_counter() - start)
        raise
    model.metrics.succeeded(time.perf_counter() - start)
    return Response(content, media_type=media_type, headers=extra)


async def _inflated(body: bytes, encoding: str, header_length: str | None,
                    model: ServedModel) -> bytes:
    """A gzip / deflate body inflated under the limit its kind has when uncompressed (JSON or
    binary), in a worker thread when it is large."""
    settings = model.settings
    json_body = header_length is None
    limit = settings.max_json_body_bytes if json_body else settings.max_body_bytes
    what = "JSON request body" if json_body else "request body"
    if len(body) > _OFFLOAD_BYTES // 16:
        return await run_in_threadpool(inflate, body, encoding, limit, what)
    return inflate(body, encoding, limit, what)


@router.post("/{name}/infer", response_model=InferenceResponse, responses=_RESPONSES,
             openapi_extra=_BODY)
async def infer(request: Request) -> Response:
    return await run_infer(model_of(request), request)


@router.post("/{name}/versions/{version}/infer", response_model=InferenceResponse,
             responses=_RESPONSES, openapi_extra=_VERSIONED_BODY)
async def infer_version(request: Request) -> Response:
    return await run_infer(model_of(request), request)
