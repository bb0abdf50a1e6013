"""Request body size limit as a pure ASGI middleware (no buffering, no BaseHTTPMiddleware).

* A ``Content-Length`` above the limit is answered 413 before the app runs.
* A body without ``Content-Length`` (chunked) is counted while it streams; the receive call that
  crosses the limit raises ``PayloadTooLargeError`` inside the route, which renders the 413.

Before answering, the rest of the body is read and dropped, up to ``drain_bytes``: a server that
closes a socket with unread data makes the kernel send a reset, and the client would often see
"connection reset" instead of the 413. A client that announced ``Expect: 100-continue`` has sent
nothing yet and gets its 413 at once. Either way the connection is closed after the answer.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.core.errors import PayloadTooLargeError


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, drain_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = drain_bytes if drain_bytes is not None else max(2 * max_bytes, 1 << 20)

    def _message(self) -> str:
        return f"request body larger than the server's limit of {self.max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
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
        if declared is not None and declared > self.max_bytes:
            if not expects_continue:
                await self._drain(receive, 0, min(declared, self.drain_bytes))
            await self._reject(send)
            return

        received = 0
        done = False

        async def limited_receive() -> Message:
            nonlocal received, done
            message = await receive()
            if message["type"] == "http.request" and not done:
                received += len(message.get("body", b""))
                done = not message.get("more_body", False)
                if received > self.max_bytes:
                    if not done:
                        await self._drain(receive, received, self.drain_bytes)
                    done = True
                    raise PayloadTooLargeError(self._message())
            return message

        await self.app(scope, limited_receive, send)

    @staticmethod
    async def _drain(receive: Receive, already: int, limit: int) -> None:
        """Read and drop body chunks until the body ends, the client leaves, or ``limit``."""
        total = already
        while total < limit:
            message = await receive()
            if message["type"] != "http.request":
                return
            total += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _reject(self, send: Send) -> None:
        body = json.dumps({"error": self._message()}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
