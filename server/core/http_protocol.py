"""uvicorn's httptools protocol with bounded request heads and a deadline for them.

uvicorn bounds neither the request line nor the headers (it concatenates URL pieces as they
arrive: a 96 MiB URL or header value cost 13-17 s of the event loop, superlinearly, and stalled
every other request), and it times out a connection only between requests (keep-alive), so a
client that sends its headers a line every two seconds, or nothing at all, holds a connection
and a file descriptor forever. This subclass adds, per request:

* a **head size limit**: a request line (URL) over ``max_url_bytes`` is answered ``414 URI Too
  Long``, headers over ``max_head_bytes`` (names and values) or ``max_headers`` in number
  ``431 Request Header Fields Too Large``, and the connection is closed at once;
* a **head deadline**: the request line and every header must arrive within
  ``head_timeout_s`` of the connection's first byte or of the previous response: else ``408``
  and close. A connection that never sends a byte is closed after the same time.

At a graceful shutdown, requests still receiving their body are ended at once (``shutdown``).
The body keeps its own limits and deadline (``server.core.body_limit``). Everything the
subclass overrides is an httptools parser callback or the connection hooks; requests within the
limits take the parent's path unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Defaults of the limits (settings can change them).
MAX_URL_BYTES = 16 * 1024
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 256
HEAD_TIMEOUT_S = 10.0

_REASONS = {408: b"Request Timeout", 414: b"URI Too Long",
            431: b"Request Header Fields Too Large"}


class _RefusedError(Exception):
    """Stops the parser from a callback; ``data_received`` answers ``_refusal``."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` refusing oversized request heads (414/431) and slow ones (408)."""

    max_url_bytes = MAX_URL_BYTES
    max_head_bytes = MAX_HEAD_BYTES
    max_headers = MAX_HEADERS
    head_timeout_s = HEAD_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._head_count = 0
        self._head_pending = False
        self._refusal: tuple[int, str] | None = None

    # ---- the deadline ----------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        self._refuse(408, f"the request head did not arrive within {self.head_timeout_s:g} s")

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()  # also bounds a connection that never sends anything

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    # ---- the sizes -------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        # The parent's body, with one more branch: a callback below refused the head (httptools
        # wraps the callback's exception in HttpParserCallbackError, which the parent would
        # answer with a generic 400). A head still incomplete after this data arms the deadline
        # (a request whose head arrives in one piece, the usual case, never creates a timer).
        self._unset_keepalive_if_required()
        self._refusal = None
        try:
            self.parser.feed_data(data)
            if self._head_pending:
                self._arm_head_timer()
        except httptools.HttpParserCallbackError:
            if self._refusal is None:
                raise
            self._refuse(*self._refusal)
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = self._head_count = 0
        self._head_pending = True

    def on_url(self, url: bytes) -> None:
        if len(self.url) + len(url) > self.max_url_bytes:
            self._refusal = (414, f"request line longer than {self.max_url_bytes} bytes")
            raise _RefusedError
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        self._head_count += 1
        if self._head_bytes > self.max_head_bytes or self._head_count > self.max_headers:
            self._refusal = (431, f"request headers larger than {self.max_head_bytes} bytes "
                                  f"or more than {self.max_headers}")
            raise _RefusedError
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_pending = False
        self._disarm_head_timer()
        super().on_headers_complete()

    # ---- shutting down ---------------------------------------------------------------------

    def shutdown(self) -> None:
        """Called for every connection when the server begins a graceful shutdown. A request
        still receiving its body cannot be answered within the grace period by a slow client
        (20 such requests once held SIGTERM for the whole grace period and logged 20
        CancelledError tracebacks): it is told the client left (its ``receive`` returns
        ``http.disconnect``) and the connection closes; requests with their whole body carry
        on and finish."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and cycle.more_body:
            cycle.disconnected = True
            cycle.keep_alive = False
            cycle.message_event.set()
            self.transport.close()
            return
        super().shutdown()

    # ---- answering -------------------------------------------------------------------------

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with a JSON error and close (the parser state is not resumable)."""
        self._disarm_head_timer()
        if self.transport.is_closing():
            return
        body = ('{"error":"' + message.replace('"', "'") + '"}').encode()
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                             % (status, _REASONS[status], len(body), body))
        self.transport.close()


def configured(max_url_bytes: int, max_head_bytes: int, head_timeout_s: float
               ) -> type[GuardedHttpToolsProtocol]:
    """The protocol class with these limits (uvicorn instantiates it per connection)."""
    return type("ConfiguredHttpToolsProtocol", (GuardedHttpToolsProtocol,),
                {"max_url_bytes": max_url_bytes, "max_head_bytes": max_head_bytes,
                 "head_timeout_s": head_timeout_s})
