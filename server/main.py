"""``create_app(settings)``: the FastAPI application.

Nothing heavy happens at import or in ``create_app``: the lifespan hook checks the repository
(``plan_models``), builds the ``ModelManager`` and starts its background loader, so
``/v2/health/live`` answers at once; models become ready after their warm-up. Shutdown stops
every worker thread (queued requests get 503).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from server import SERVER_NAME, __version__
from server.core.body_limit import BodySizeLimitMiddleware
from server.core.config import Settings
from server.core.errors import install_exception_handlers
from server.metrics import Metrics
from server.pipeline.manager import ModelManager
from server.pipeline.served_model import plan_models
from server.routers import classify, health, infer, metrics, models, server_metadata


def create_app(settings: Settings, on_fatal: Callable[[str], None] | None = None) -> FastAPI:
    """The app for ``settings``; ``on_fatal(message)`` is called if a model fails to load."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        manager = ModelManager(settings, plan_models(settings), app.state.metrics, on_fatal)
        app.state.manager = manager
        manager.start()
        try:
            yield
        finally:
            manager.stop()

    app = FastAPI(title=SERVER_NAME, version=__version__, lifespan=lifespan,
                  description="Label-only inference server (Open Inference Protocol subset).")
    app.state.settings = settings
    app.state.metrics = Metrics(settings.max_batch_size)
    install_exception_handlers(app)
    for module in (health, server_metadata, models, infer, classify, metrics):
        app.include_router(module.router)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app
