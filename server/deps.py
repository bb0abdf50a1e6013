"""``Annotated`` dependency aliases shared by the routers.

The dependencies are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in its
thread pool, a thread hand-off per call that costs more than the whole lookup.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from server.core.errors import NotFoundError
from server.pipeline.manager import ModelManager
from server.pipeline.served_model import ServedModel
from server.protocol.codec import MODEL_VERSION


async def get_manager(request: Request) -> ModelManager:
    return request.app.state.manager


ManagerDep = Annotated[ModelManager, Depends(get_manager)]


#: Model names in paths, as the repository allows them (documented in the OpenAPI schema).
MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"
ModelName = Annotated[str, Path(pattern=MODEL_NAME_PATTERN, max_length=128,
                                description="a model of the repository")]


async def get_model(name: ModelName, manager: ManagerDep) -> ServedModel:
    """The model named in the path (400 invalid name, 404 not served, 503 unavailable)."""
    return manager.get(name)


ModelDep = Annotated[ServedModel, Depends(get_model)]


async def get_versioned_model(name: ModelName, version: str,
                              manager: ManagerDep) -> ServedModel:
    """``/v2/models/{name}/versions/{version}/...``: every model has one version, "1"."""
    model = manager.get(name)
    if version != MODEL_VERSION:
        raise NotFoundError(f"model {name!r} has no version {version[:32]!r} (only version "
                            f"{MODEL_VERSION})")
    return model


VersionedModelDep = Annotated[ServedModel, Depends(get_versioned_model)]
