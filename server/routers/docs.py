"""``/docs`` (Swagger UI) and ``/redoc`` served with their scripts and styles from this server,
not from a CDN: on an edge node without internet (or an air-gapped owner's network) FastAPI's
default pages are blank. The assets come from the pinned ``fastapi-offline`` package, which
ships them (Swagger UI's bundle and CSS, ReDoc's standalone script) under ``static/``."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"


def assets_folder() -> Path | None:
    """The folder of the bundled assets, ``None`` when the package is not installed."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = Path(fastapi_offline.__file__).parent / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def install(app: FastAPI) -> None:
    """Mount the assets and the two pages (``app`` must be built with ``docs_url=None`` and
    ``redoc_url=None``); without the assets the pages are left out, never half-served."""
    folder = assets_folder()
    if folder is None:
        return
    app.mount(ASSETS, StaticFiles(directory=folder), name="docs-assets")
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs",
                                   swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS}/favicon.png")

    @router.get("/redoc")
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=f"{ASSETS}/favicon.png", with_google_fonts=False)

    app.include_router(router)
