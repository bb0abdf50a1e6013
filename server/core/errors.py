"""Errors as the wire shows them: ``{"error": "..."}`` with a 4xx (or 503), never internals.

Routes raise an ``ApiError`` subclass; ``install_exception_handlers`` renders it. FastAPI's
request validation errors become 400 (not 422 with a detail list), Starlette's HTTP errors (404
for an unknown route, 405) keep their status with the same body shape, and anything unexpected
becomes 500 ``{"error": "internal error"}`` with the traceback only in the server log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

log = logging.getLogger("server")


class ApiError(Exception):
    """An error the client caused (or 503: come back later); ``reason`` labels the metric."""

    status_code = 400
    reason = "bad_request"

    def __init__(self, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})


class BadRequestError(ApiError):
    pass


class NotFoundError(ApiError):
    status_code = 404
    reason = "not_found"


class PayloadTooLargeError(ApiError):
    status_code = 413
    reason = "too_large"

    def __init__(self, message: str) -> None:
        super().__init__(message, {"Connection": "close"})


class UnsupportedMediaTypeError(ApiError):
    status_code = 415
    reason = "bad_request"


class RequestTimeoutError(ApiError):
    """408: the client did not send its whole body within the body timeout."""

    status_code = 408
    reason = "timeout"

    def __init__(self, message: str) -> None:
        super().__init__(message, {"Connection": "close"})


class ClientGoneError(ApiError):
    """The client closed the connection before its body arrived: nobody reads the answer (499,
    nginx's "client closed request"), and it is no server error."""

    status_code = 499
    reason = "client_disconnect"


class UnavailableError(ApiError):
    """503 with ``Retry-After``: the model is loading, or the server is shutting down."""

    status_code = 503
    reason = "not_ready"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message, {"Retry-After": str(retry_after_s)})


class OverloadedError(UnavailableError):
    """503: the model's request queue is full."""

    reason = "overloaded"


class InternalError(ApiError):
    """A failure inside the pipeline; the message sent is fixed, the cause is only logged."""

    status_code = 500
    reason = "internal"

    def __init__(self) -> None:
        super().__init__("internal error")


def error_response(status_code: int, message: str,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code, headers=dict(headers or {}))


def validation_message(errors: list[dict]) -> str:
    """``where: what`` for the first pydantic error (input values are never echoed)."""
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def install_exception_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status_code, exc.message, exc.headers)

    async def request_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(400, validation_message(list(exc.errors())))

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(exc.status_code, str(exc.detail), exc.headers)

    async def client_gone(request: Request, exc: Exception) -> JSONResponse:
        log.info("client left during %s %s", request.method, request.url.path)
        return error_response(499, "client closed the connection")

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path,
                  exc_info=(type(exc), exc, exc.__traceback__))
        return error_response(500, "internal error")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, request_validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(Exception, unexpected)
