"""``GET /v2/models/{name}`` (metadata) and ``GET /v2/models/{name}/ready``, also under
``/versions/1``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from server.dataplane import DataPlane
from server.deps import ModelDep, VersionedModelDep
from server.pipeline.served_model import ServedModel
from server.protocol.schemas import ErrorResponse, ModelMetadata, ModelReadyResponse

router = APIRouter(prefix="/v2/models", tags=["models"])

_ERRORS = {400: {"model": ErrorResponse}, 404: {"model": ErrorResponse}}


@router.get("/{name}", response_model=ModelMetadata, responses=_ERRORS)
async def model_metadata(model: ModelDep) -> ModelMetadata:
    return DataPlane.metadata(model)


@router.get("/{name}/versions/{version}", response_model=ModelMetadata, responses=_ERRORS)
async def model_version_metadata(model: VersionedModelDep) -> ModelMetadata:
    return DataPlane.metadata(model)


def _ready(model: ServedModel) -> ModelReadyResponse | JSONResponse:
    if model.ready:
        return ModelReadyResponse(name=model.name, ready=True)
    body = ModelReadyResponse(name=model.name, ready=False,
                              error=model.error or "model is loading")
    return JSONResponse(body.model_dump(exclude_none=True), status_code=503,
                        headers={"Retry-After": "1"})


@router.get("/{name}/ready", response_model=ModelReadyResponse,
            response_model_exclude_none=True,
            responses={**_ERRORS, 503: {"model": ModelReadyResponse}})
async def model_ready(model: ModelDep) -> ModelReadyResponse | JSONResponse:
    return _ready(model)


@router.get("/{name}/versions/{version}/ready", response_model=ModelReadyResponse,
            response_model_exclude_none=True,
            responses={**_ERRORS, 503: {"model": ModelReadyResponse}})
async def model_version_ready(model: VersionedModelDep) -> ModelReadyResponse | JSONResponse:
    return _ready(model)
