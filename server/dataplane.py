"""The data plane: everything between a route and a served model (KServe's ``dataplane.py``
layer between ``v2_endpoints.py`` and the model).

Routers parse the path and answer; the data plane decodes and validates the body (OIP JSON or
binary tensors, compressed or not; PNG/JPEG uploads), submits images to the model's batcher,
accounts the request in the metrics (one place: :meth:`DataPlane.accounted`) and builds the
wire response. Served models take float arrays and return label arrays and plain metadata
(``ServedModel.describe``); the protocol's schemas live here and in ``server.protocol``.

Work that can take long runs off the event loop: large bodies are inflated and decoded in the
thread pool (above ``OFFLOAD_BYTES``), image decoding too except for a tiny image for a tiny
model (``INLINE_BODY_BYTES``, measured cheaper than the thread hop).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request

from server.core.errors import (
    ApiError,
    BadRequestError,
    UnavailableError,
    UnsupportedMediaTypeError,
)
from server.pipeline.served_model import ServedModel
from server.protocol.codec import (
    HEADER_LENGTH,
    check_infer_content_type,
    decode_infer_request,
    encode_infer_response,
    media_type,
    uint8_nhwc_to_float,
)
from server.protocol.compression import content_encoding, inflate
from server.protocol.images import MEDIA_TYPES, decode_images
from server.protocol.schemas import ModelMetadata, ModelParameters

#: Bodies above this are inflated and decoded in a worker thread so the event loop keeps serving.
OFFLOAD_BYTES = 256 * 1024
# A raw image body this small, for a model this small, is decoded on the event loop: the image
# must have the model's size (checked from the header before any pixel is decoded), so the
# decode is bounded (a 28x28 PNG: ~55 us measured on the 2-core machine), and it costs less than
# the hop to a worker thread and back (~130 us measured there, under load).
INLINE_BODY_BYTES = 16 * 1024
INLINE_PIXELS = 64 * 64 * 3
FORM_FIELDS = ("files", "file")


class DataPlane:
    """Request handling shared by every route that reaches a model; one per app (its
    semaphore belongs to the app's event loop).

    ``large_body_slots`` bounds how many large bodies (over ``OFFLOAD_BYTES``) are decoded at
    once: parsing a 4 MiB JSON body holds the GIL for about a second, and 32 of them parsed in
    parallel threads starved the event loop (small requests waited ~40 s and bodies timed out
    with 408); queued behind the slots, the large ones wait their turn and the rest flows.
    """

    def __init__(self, large_body_slots: int = 1) -> None:
        self._large = asyncio.Semaphore(max(1, large_body_slots))

    @asynccontextmanager
    async def accounted(self, model: ServedModel) -> AsyncIterator[None]:
        """Count the request, its failure reason or its success and duration: the one place
        the metrics see a request."""
        model.metrics.requests.inc()
        start = time.perf_counter()
        try:
            yield
        except ApiError as error:
            model.metrics.failure(error.reason, time.perf_counter() - start)
            raise
        except HTTPException:  # malformed multipart, too many files (Starlette's 400)
            model.metrics.failure("bad_request", time.perf_counter() - start)
            raise
        except ClientDisconnect:  # the client left mid-body: nobody to answer
            model.metrics.failure("client_disconnect", time.perf_counter() - start)
            raise
        except Exception:
            model.metrics.failure("internal", time.perf_counter() - start)
            raise
        model.metrics.succeeded(time.perf_counter() - start)

    # ---- OIP infer ------------------------------------------------------------------------

    async def infer(self, model: ServedModel, request: Request
                    ) -> tuple[bytes, dict[str, str], str]:
        """``POST .../infer``: ``(content, extra headers, media type)`` of the answer."""
        async with self.accounted(model):
            headers = request.headers
            check_infer_content_type(headers.get("content-type"))
            encoding = content_encoding(headers.get("content-encoding"))
            self._check_ready(model)
            body = await request.body()
            header_length = headers.get(HEADER_LENGTH)
            if encoding is not None:
                body = await self._inflated(body, encoding, header_length, model)
            if len(body) > OFFLOAD_BYTES:
                async with self._large:
                    decoded = await run_in_threadpool(decode_infer_request, body,
                                                      header_length, model.signature,
                                                      model.name)
            else:
                decoded = decode_infer_request(body, header_length, model.signature,
                                               model.name)
            labels = await model.infer(decoded.images)
            return encode_infer_response(model.name, decoded.request_id, labels,
                                         decoded.binary_output)

    async def _inflated(self, body: bytes, encoding: str, header_length: str | None,
                        model: ServedModel) -> bytes:
        """A gzip / deflate body inflated under the limit its kind has when uncompressed (JSON
        or binary), in a worker thread when it is large."""
        settings = model.settings
        json_body = header_length is None
        limit = settings.max_json_body_bytes if json_body else settings.max_body_bytes
        what = "JSON request body" if json_body else "request body"
        if len(body) > OFFLOAD_BYTES // 16:
            async with self._large:
                return await run_in_threadpool(inflate, body, encoding, limit, what)
        return inflate(body, encoding, limit, what)

    # ---- image uploads --------------------------------------------------------------------

    async def classify(self, model: ServedModel, request: Request) -> bytes:
        """``POST /v1/models/{name}/classify``: the JSON answer (labels and class names)."""
        async with self.accounted(model):
            kind = self._upload_kind(request.headers)
            self._check_ready(model)
            if kind in MEDIA_TYPES:
                labels = await self._classify_raw(model, await request.body(),
                                                  MEDIA_TYPES[kind])
            else:
                labels = await self._classify_form(model, request)
        names = model.config.labels
        values = labels.tolist()
        # the body ClassifyResponse documents, written directly (validating our own ints and
        # names through the response model cost more than the rest of the route)
        body = {"model_name": model.name, "labels": values,
                "names": [names[i] if i < len(names) else str(i) for i in values]}
        return json.dumps(body, separators=(",", ":")).encode()

    @staticmethod
    def _upload_kind(headers: Headers) -> str:
        kind = media_type(headers.get("content-type"))
        if kind != "multipart/form-data" and kind not in MEDIA_TYPES:
            raise UnsupportedMediaTypeError("send images as multipart/form-data file fields "
                                            "named 'files' (curl -F files=@image.png), or one "
                                            "image as an image/png or image/jpeg body")
        if (headers.get("content-encoding") or "").strip().lower() not in {"", "identity"}:
            raise UnsupportedMediaTypeError("images are compressed already: send them without "
                                            "a Content-Encoding")
        return kind

    async def _classify_raw(self, model: ServedModel, body: bytes,
                            formats: tuple[str, ...]) -> np.ndarray:
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

    async def _classify_form(self, model: ServedModel, request: Request) -> np.ndarray:
        """Multipart file fields named ``files``, decoded off the event loop."""
        limit = model.signature.max_batch_size
        async with request.form(max_files=limit, max_fields=limit) as form:
            uploads = []
            for key, value in form.multi_items():
                if key not in FORM_FIELDS:
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

    # ---- metadata -------------------------------------------------------------------------

    @staticmethod
    def metadata(model: ServedModel) -> ModelMetadata:
        """``GET /v2/models/{name}``: the model's plain description as the protocol's schema."""
        info = model.describe()
        return ModelMetadata(
            name=info.name, versions=list(info.versions), platform=info.platform,
            inputs=model.signature.inputs(), outputs=model.signature.outputs(),
            parameters=ModelParameters(
                backend=info.backend, device=info.device, providers=list(info.providers),
                preprocessing=info.preprocessing, preprocessing_runs=info.preprocessing_runs,
                max_batch_size=info.max_batch_size, class_names=list(info.class_names)))

    @staticmethod
    def _check_ready(model: ServedModel) -> None:
        if not model.ready:
            raise UnavailableError(f"model {model.name!r} is not ready")



def data_plane(request: Request) -> DataPlane:
    """The app's data plane (made in ``server.main.create_app``)."""
    return request.app.state.dataplane
