"""``GET /v2/health/live`` (at once, even while models load) and ``GET /v2/health/ready``
(200 once every model has warmed up, else 503 with Retry-After)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from server.deps import ManagerDep
from server.protocol.schemas import LiveResponse, ReadyResponse

router = APIRouter(prefix="/v2/health", tags=["health"])


@router.get("/live", response_model=LiveResponse)
async def live() -> LiveResponse:
    return LiveResponse(live=True)


@router.get("/ready", response_model=ReadyResponse, response_model_exclude_none=True,
            responses={503: {"model": ReadyResponse}})
async def ready(manager: ManagerDep) -> ReadyResponse | JSONResponse:
    unavailable = dict(manager.failed) or None
    if manager.ready:
        return ReadyResponse(ready=True, unavailable=unavailable)
    reason = manager.error or "models are loading"
    body = ReadyResponse(ready=False, error=reason, unavailable=unavailable)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=503,
                        headers={"Retry-After": "1"})
