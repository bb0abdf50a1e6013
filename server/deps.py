"""``Annotated`` dependency aliases shared by the routers.

The dependencies are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in its
thread pool, a thread hand-off per call that costs more than the whole lookup.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from models.config import MODEL_NAME_RE, MODEL_VERSION
from server.core.errors import NotFoundError
from server.pipeline.manager import ModelManager
from server.pipeline.served_model import ServedModel


async def get_manager(request: Request) -> ModelManager:
    return request.app.state.manager


ManagerDep = Annotated[ModelManager, Depends(get_manager)]


#: Model names in paths, as the repository allows them (documented in the OpenAPI schema).
MODEL_NAME_PATTERN = f"^{MODEL_NAME_RE.pattern}$"  # the repository's own rule
ModelName = Annotated[str, Path(pattern=MODEL_NAME_PATTERN, max_length=128,
                                description="a model of the repository")]


async def get_model(name: ModelName, manager: ManagerDep) -> ServedModel:
    """The model named in the path (400 invalid name, 404 not served, 503 unavailable)."""
    return manager.get(name)


ModelDep = Annotated[ServedModel, Depends(get_model)]


async def get_versioned_model(name: ModelName, version: str,
                              manager: ManagerDep) -> ServedModel:
    """``/v2/models/{name}/versions/{version}/...``: every model has one version, "1"."""
    return check_version(manager.get(name), version)


def check_version(model: ServedModel, version: str | None) -> ServedModel:
    """``model`` when ``version`` is absent or "1" (every model has one version), else 404."""
    if version is not None and version != MODEL_VERSION:
        raise NotFoundError(f"model {model.name!r} has no version {version[:32]!r} (only "
                            f"version {MODEL_VERSION})")
    return model


VersionedModelDep = Annotated[ServedModel, Depends(get_versioned_model)]


# ---- the hot routes (infer, classify) look their model up without Depends --------------------
# FastAPI's dependency solving and path-parameter validation cost ~0.2 ms per request on the
# 2-core machine (cProfile under wrk load), a fifth of a whole single-image request; these two
# do the same lookup and checks by hand and document the parameters themselves.

NAME_PARAMETER: dict = {"name": "name", "in": "path", "required": True,
                        "description": "a model of the repository",
                        "schema": {"type": "string", "pattern": MODEL_NAME_PATTERN,
                                   "maxLength": 128}}
VERSION_PARAMETER: dict = {"name": "version", "in": "path", "required": True,
                           "schema": {"type": "string"}}


def model_of(request: Request) -> ServedModel:
    """The model named in the path of ``request``: ``get_model`` without Depends (400 invalid
    name, 404 not served or no such version, 503 unavailable)."""
    manager: ModelManager = request.app.state.manager
    params = request.path_params
    return check_version(manager.get(params["name"]), params.get("version"))
