"""Triton's statistics extension: ``GET /v2/models/stats`` (every served model),
``GET /v2/models/{name}/stats`` and ``GET /v2/models/{name}/versions/{version}/stats``.

The body is ``{"model_stats": [...]}`` with one entry per model version, the fields of
``server.pipeline.statistics.ModelStatistics`` (what tritonclient's
``get_inference_statistics`` returns). Counts and durations only: nothing about any output.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from server.deps import ManagerDep, ModelDep, VersionedModelDep
from server.protocol.schemas import ErrorResponse

router = APIRouter(prefix="/v2/models", tags=["statistics"])

_ERRORS = {code: {"model": ErrorResponse} for code in (400, 404, 503)}


@router.get("/stats")
async def all_statistics(manager: ManagerDep) -> dict[str, Any]:
    return {"model_stats": [model.metrics.stats.snapshot()
                            for name, model in sorted(manager.models.items())
                            if name not in manager.failed]}


@router.get("/{name}/stats", responses=_ERRORS)
async def model_statistics(model: ModelDep) -> dict[str, Any]:
    return {"model_stats": [model.metrics.stats.snapshot()]}


@router.get("/{name}/versions/{version}/stats", responses=_ERRORS)
async def model_version_statistics(model: VersionedModelDep) -> dict[str, Any]:
    return {"model_stats": [model.metrics.stats.snapshot()]}
