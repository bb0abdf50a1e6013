"""``Annotated`` dependency aliases shared by the routers.

The dependencies are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in its
thread pool, a thread hand-off per call that costs more than the whole lookup.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from server.core.errors import NotFoundError
from server.pipeline.manager import ModelManager
from server.pipeline.served_model import ServedModel
from server.protocol.codec import MODEL_VERSION


async def get_manager(request: Request) -> ModelManager:
    return request.app.state.manager


ManagerDep = Annotated[ModelManager, Depends(get_manager)]


async def get_model(name: str, manager: ManagerDep) -> ServedModel:
    """The model named in the path (400 invalid name, 404 not served)."""
    return manager.get(name)


ModelDep = Annotated[ServedModel, Depends(get_model)]


async def get_versioned_model(name: str, version: str, manager: ManagerDep) -> ServedModel:
    """``/v2/models/{name}/versions/{version}/...``: every model has one version, "1"."""
    model = manager.get(name)
    if version != MODEL_VERSION:
        raise NotFoundError(f"model {name!r} has no version {version[:32]!r} (only version "
                            f"{MODEL_VERSION})")
    return model


VersionedModelDep = Annotated[ServedModel, Depends(get_versioned_model)]
