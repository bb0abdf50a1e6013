"""``POST /v2/models/{name}/infer`` (also under ``/versions/1``): JSON and binary tensors in,
INT64 labels out (JSON ``data`` or binary when asked). See ``server.protocol.codec``. Bodies
may be gzip or deflate compressed (``server.protocol.compression``)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from server.dataplane import data_plane
from server.deps import NAME_PARAMETER, VERSION_PARAMETER, model_of
from server.protocol.codec import HEADER_LENGTH
from server.protocol.schemas import ErrorResponse, InferenceResponse

router = APIRouter(prefix="/v2/models", tags=["infer"])

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


@router.post("/{name}/infer", response_model=InferenceResponse, responses=_RESPONSES,
             openapi_extra=_BODY)
async def infer(request: Request) -> Response:
    content, extra, media_type = await data_plane(request).infer(model_of(request), request)
    return Response(content, media_type=media_type, headers=extra)


@router.post("/{name}/versions/{version}/infer", response_model=InferenceResponse,
             responses=_RESPONSES, openapi_extra=_VERSIONED_BODY)
async def infer_version(request: Request) -> Response:
    content, extra, media_type = await data_plane(request).infer(model_of(request), request)
    return Response(content, media_type=media_type, headers=extra)
