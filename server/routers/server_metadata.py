"""``GET /v2``: server metadata (name, version, protocol extensions)."""

from __future__ import annotations

from fastapi import APIRouter

from server import SERVER_NAME, __version__
from server.protocol.schemas import ServerMetadata

router = APIRouter(tags=["server"])

EXTENSIONS = ["binary_tensor_data", "statistics"]


@router.get("/v2", response_model=ServerMetadata)
async def server_metadata() -> ServerMetadata:
    return ServerMetadata(name=SERVER_NAME, version=__version__, extensions=EXTENSIONS)
