"""``create_app(settings)``: the FastAPI application.

Nothing heavy happens at import or in ``create_app``: the lifespan hook checks the repository
(``plan_models``), builds the ``ModelManager`` and starts its background loader, so
``/v2/health/live`` answers at once; models become ready after their warm-up. Shutdown stops
every worker thread (queued requests get 503).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from server import SERVER_NAME, __version__
from server.core.body_limit import BodySizeLimitMiddleware
from server.core.config import Settings
from server.core.errors import install_exception_handlers
from server.dataplane import DataPlane
from server.metrics import Metrics
from server.pipeline.manager import ModelManager
from server.pipeline.served_model import plan_models
from server.protocol.schemas import InferenceRequest
from server.routers import (
    classify,
    docs,
    health,
    infer,
    metrics,
    models,
    server_metadata,
    statistics,
)


def create_app(settings: Settings, on_fatal: Callable[[str], None] | None = None) -> FastAPI:
    """The app for ``settings``; ``on_fatal(message)`` is called if a model fails to load."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        plans, failed = plan_models(settings)
        manager = ModelManager(settings, plans, app.state.metrics, on_fatal, failed)
        app.state.manager = manager
        manager.start()
        try:
            yield
        finally:
            manager.stop()

    app = FastAPI(title=SERVER_NAME, version=__version__, lifespan=lifespan,
                  description="Label-only inference server (Open Inference Protocol subset).",
                  docs_url=None, redoc_url=None)  # served from local assets (routers.docs)
    app.state.settings = settings
    app.state.metrics = Metrics(settings.max_batch_size)
    # large bodies are decoded one per core at most, so the event loop keeps a share of the GIL
    app.state.dataplane = DataPlane(max(1, (os.cpu_count() or 2) // 2))
    install_exception_handlers(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    # the hot routes first (routes are matched in order); statistics before models:
    # /v2/models/stats is not a model called "stats"
    for module in (infer, classify, health, server_metadata, statistics, models, metrics):
        app.include_router(module.router)
    docs.install(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes,
                       max_json_bytes=settings.max_json_body_bytes,
                       timeout_s=settings.body_timeout_s, on_reject=_count_rejected(app))
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the request models the raw-body routes document by reference."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes,
                             description=app.description)
        request = InferenceRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(request.pop("$defs", {}))
        components["InferenceRequest"] = request
        app.openapi_schema = schema
    return app.openapi_schema


_MODEL_PATH = re.compile(r"^/(?:v2/models/([^/]+)(?:/versions/[^/]+)?/infer|"
                         r"v1/models/([^/]+)/classify)$")


def _count_rejected(app: FastAPI) -> Callable[[str, str], None]:
    """Count a request the body-limit middleware answered before any route ran: per model when
    the path names a served one, and in the server-wide ``http_request_rejected_total``."""

    def count(path: str, reason: str) -> None:
        metrics: Metrics = app.state.metrics
        metrics.rejected.labels(reason=reason).inc()
        match = _MODEL_PATH.match(path)
        manager = getattr(app.state, "manager", None)
        name = (match.group(1) or match.group(2)) if match else None
        if manager is not None and name in manager.models:
            manager.models[name].metrics.failure(reason)

    return count
