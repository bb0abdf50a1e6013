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

from fastapi import APIRouter, Request, Response

from server.dataplane import data_plane
from server.deps import NAME_PARAMETER, model_of
from server.protocol.schemas import ClassifyResponse, ErrorResponse

router = APIRouter(prefix="/v1/models", tags=["classify"])

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
    body = await data_plane(request).classify(model_of(request), request)
    return Response(body, media_type="application/json")
