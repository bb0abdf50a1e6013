"""Request body limits as a pure ASGI middleware (no buffering, no BaseHTTPMiddleware).

* **Size.** JSON bodies (a JSON content type, or none, without
  ``Inference-Header-Content-Length``) may hold at most ``max_json_bytes``: parsing JSON tensor
  data builds a Python object per number, about 25 times the body's size in memory (a 30 MB
  JSON body cost 760 MB). Everything else (binary tensors, uploads) may hold ``max_bytes``. A
  ``Content-Length`` above the limit is answered 413 before the app runs; a chunked body is
  counted while it streams, and the receive call that crosses the limit raises
  ``PayloadTooLargeError`` inside the route, which renders the 413.
* **Time.** The whole body must arrive within ``timeout_s`` of the first read: a slow (or
  endless) body raises ``RequestTimeoutError`` (408, connection closed), so a client cannot
  hold a worker slot forever.

Before answering 413, the rest of the body is read and dropped, up to ``drain_bytes``: a server
that closes a socket with unread data makes the kernel send a reset, and the client would often
see "connection reset" instead of the 413. A client that announced ``Expect: 100-continue`` has
sent nothing yet and gets its 413 at once. Either way the connection is closed after the answer.
``on_reject(path, reason)`` is told about every request this middleware answers itself (413
before the app runs), for the metrics; errors raised inside a route are counted there.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.core.errors import PayloadTooLargeError, RequestTimeoutError

_JSON_TYPES = (b"", b"application/json")


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, max_json_bytes: int | None = None,
                 timeout_s: float = 30.0, drain_bytes: int | None = None,
                 on_reject: Callable[[str, str], None] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_json_bytes = min(max_json_bytes or max_bytes, max_bytes)
        self.timeout_s = timeout_s
        self.drain_bytes = drain_bytes if drain_bytes is not None else max(2 * max_bytes, 1 << 20)
        self.on_reject = on_reject

    def _limit(self, headers: list[tuple[bytes, bytes]]) -> tuple[int, str]:
        values = dict(headers)
        kind = values.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        if kind in _JSON_TYPES and b"inference-header-content-length" not in values:
            return self.max_json_bytes, "JSON request body"
        return self.max_bytes, "request body"

    @staticmethod
    def _message(what: str, limit: int) -> str:
        hint = " (send binary tensors for more)" if what.startswith("JSON") else ""
        return f"{what} larger than the server's limit of {limit} bytes{hint}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, what = self._limit(scope["headers"])
        declared: int | None = None
        expects_continue = False
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None  # the HTTP layer rejects a malformed length itself
            elif key == b"expect" and value.lower() == b"100-continue":
                expects_continue = True
        if declared is not None and declared > limit:
            if not expects_continue:
                await self._drain(receive, 0, min(declared, self.drain_bytes))
            self._rejected(scope, "too_large")
            await self._reject(send, self._message(what, limit))
            return

        received = 0
        done = False
        deadline: float | None = None

        async def limited_receive() -> Message:
            nonlocal received, done, deadline
            if done:
                return await receive()
            if deadline is None:
                deadline = time.monotonic() + self.timeout_s
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    message = await receive()
            except TimeoutError:
                done = True
                raise RequestTimeoutError(f"the request body did not arrive within "
                                          f"{self.timeout_s:g} s") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                done = not message.get("more_body", False)
                if received > limit:
                    if not done:
                        await self._drain(receive, received, self.drain_bytes)
                    done = True
                    raise PayloadTooLargeError(self._message(what, limit))
            return message

        await self.app(scope, limited_receive, send)

    def _rejected(self, scope: Scope, reason: str) -> None:
        if self.on_reject is not None:
            self.on_reject(str(scope.get("path", "")), reason)

    async def _drain(self, receive: Receive, already: int, limit: int) -> None:
        """Read and drop body chunks until the body ends, the client leaves, ``limit`` bytes,
        or the body timeout."""
        total = already
        try:
            async with asyncio.timeout(self.timeout_s):
                while total < limit:
                    message = await receive()
                    if message["type"] != "http.request":
                        return
                    total += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        return
        except TimeoutError:
            return

    @staticmethod
    async def _reject(send: Send, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
