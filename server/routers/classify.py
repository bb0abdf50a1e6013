"""``POST /v1/models/{name}/classify``: PNG/JPEG uploads for curl users.

    curl -F files=@shirt.png -F files=@boot.jpg http://127.0.0.1:8000/v1/models/target/classify
    {"model_name":"target","labels":[6,9],"names":["Shirt","Ankle boot"]}

or one image as the raw body (``image/png`` or ``image/jpeg``, as TorchServe takes it)::

    curl --data-binary @shirt.png -H 'Content-Type: image/png' \
        http://127.0.0.1:8000/v1/models/target/classify

Images are converted to the model's channels (grey or RGB) and must already have the model's
size: the server never resizes (400 with the expected size). At most ``max_batch_size`` files.
"""

from __future__ import annotations

import json
import time

import numpy as np
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from server.core.errors import (
    ApiError,
    BadRequestError,
    UnavailableError,
    UnsupportedMediaTypeError,
)
from server.deps import NAME_PARAMETER, model_of
from server.pipeline.served_model import ServedModel
from server.protocol.codec import media_type, uint8_nhwc_to_float
from server.protocol.images import MEDIA_TYPES, decode_images
from server.protocol.schemas import ClassifyResponse, ErrorResponse

router = APIRouter(prefix="/v1/models", tags=["classify"])

FIELDS = ("files", "file")

# A raw body this small, for a model this small, is decoded on the event loop: the image must have
# the model's size (checked from the header before any pixel is decoded), so the decode is bounded
# (a 28x28 PNG: ~55 us measured on the 2-core machine), and it costs less than the hop to a worker
# thread and back (~130 us measured there, under load). Anything larger goes to the thread pool.
INLINE_BODY_BYTES = 16 * 1024
INLINE_PIXELS = 64 * 64 * 3


_RAW = {"schema": {"type": "string", "format": "binary",
                   "description": "one image of the model's input size"}}
_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["files"],
    "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"},
                             "description": "PNG or JPEG images of the model's input size"}}}},
    "image/png": _RAW, "image/jpeg": _RAW}}, "parameters": [NAME_PARAMETER]}


@router.post("/{name}/classify", response_model=ClassifyResponse, openapi_extra=_BODY,
             responses={code: {"model": ErrorResponse} for code in (400, 404, 413, 415, 503)})
async def classify(request: Request) -> Response:
    model = model_of(request)
    model.metrics.requests.inc()
    start = time.perf_counter()
    try:
        kind = media_type(request.headers.get("content-type"))
        if kind != "multipart/form-data" and kind not in MEDIA_TYPES:
            raise UnsupportedMediaTypeError("send images as multipart/form-data file fields named "
                                            "'files' (curl -F files=@image.png), or one image as "
                                            "an image/png or image/jpeg body")
        content_encoding = (request.headers.get("content-encoding") or "").strip().lower()
        if content_encoding not in {"", "identity"}:
            raise UnsupportedMediaTypeError("images are compressed already: send them without "
                                            "a Content-Encoding")
        if not model.ready:
            raise UnavailableError(f"model {model.name!r} is not ready")
        if kind in MEDIA_TYPES:
            labels = await _classify_raw(model, await request.body(), MEDIA_TYPES[kind])
        else:
            labels = await _classify_form(model, request)
    except ApiError as error:
        model.metrics.failure(error.reason, time.perf_counter() - start)
        raise
    except HTTPException:  # malformed multipart, too many files (Starlette's 400)
        model.metrics.failure("bad_request", time.perf_counter() - start)
        raise
    except ClientDisconnect:
        model.metrics.failure("client_disconnect", time.perf_counter() - start)
        raise
    except Exception:
        model.metrics.failure("internal", time.perf_counter() - start)
        raise
    model.metrics.succeeded(time.perf_counter() - start)
    names = model.config.labels
    values = labels.tolist()
    # the body ClassifyResponse documents, written directly (validating our own ints and
    # names through the response model cost more than the rest of the route)
    body = {"model_name": model.name, "labels": values,
            "names": [names[i] if i < len(names) else str(i) for i in values]}
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


async def _classify_raw(model: ServedModel, body: bytes, formats: tuple[str, ...]) -> np.ndarray:
    """One image as the whole body, decoded off the event loop unless it is tiny."""
    if not body:
        raise BadRequestError("empty body: send one PNG or JPEG image")
    signature = model.signature
    if len(body) <= INLINE_BODY_BYTES and \
            signature.height * signature.width * signature.channels <= INLINE_PIXELS:
        arrays = decode_images([body], signature, formats)
    else:
        arrays = await run_in_threadpool(decode_images, [body], signature, formats)
    return await model.infer(uint8_nhwc_to_float(arrays))


async def _classify_form(model: ServedModel, request: Request) -> np.ndarray:
    """Multipart file fields named ``files``, decoded off the event loop."""
    limit = model.signature.max_batch_size
    async with request.form(max_files=limit, max_fields=limit) as form:
        uploads = []
        for key, value in form.multi_items():
            if key not in FIELDS:
                raise BadRequestError(f"unknown form field {key[:64]!r}: send images as "
                                      "'files'")
            if not isinstance(value, UploadFile):
                raise BadRequestError(f"form field {key!r} must be a file upload")
            uploads.append(value)
        if not uploads:
            raise BadRequestError("no image files: send them as 'files' fields")
        data = [await upload.read() for upload in uploads]
    arrays = await run_in_threadpool(decode_images, data, model.signature)
    return await model.infer(uint8_nhwc_to_float(arrays))
