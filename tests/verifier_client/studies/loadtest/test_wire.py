"""The load generator's HTTP client against canned answers (``loadtest.wire``)."""

from __future__ import annotations

import asyncio
import json

import pytest

from verifier_client.oip_client import InputPlan
from verifier_client.studies.loadtest.wire import Connection, RequestError, Target, send


def _answer(status: int, labels: list[int], chunked: bool = False) -> bytes:
    body = json.dumps({"model_name": "m", "outputs": [
        {"name": "label", "datatype": "INT64", "shape": [len(labels)], "data": labels}]}).encode()
    if status != 200:
        body = b'{"error": "overloaded"}'
    head = f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
    if chunked:
        half = len(body) // 2
        payload = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n"
                           for part in (body[:half], body[half:])) + b"0\r\n\r\n"
        return (head + "transfer-encoding: chunked\r\n\r\n").encode() + payload
    return (head + f"content-length: {len(body)}\r\n\r\n").encode() + body


async def _exchange_with(answer: bytes, n: int) -> str:
    """Send one request to a server that always answers ``answer``; the failure kind or 'ok'."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        await reader.readexactly(length)
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    plan = InputPlan("m", "images", "UINT8", "NHWC", (1, 2, 2))
    target = Target("m", plan, [], n, {})
    request = (b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n"
               ) + b"{}"
    connection = await Connection.open("127.0.0.1", port, 5.0)
    try:
        await send(connection, target, request, 5.0)
        return "ok"
    except RequestError as error:
        return error.kind
    finally:
        connection.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(("answer", "n", "kind"), [
    (_answer(200, [3]), 1, "ok"),
    (_answer(200, [3, 1], chunked=True), 2, "ok"),
    (_answer(200, [3, 1]), 1, "bad_response"),  # two labels for one image
    (_answer(200, []), 1, "bad_response"),
    (_answer(503, []), 1, "http_503"),
    (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", 1, "connection"),
], ids=["one-label", "chunked", "label-count", "no-labels", "503", "truncated"])
def test_client_checks_every_answer(answer: bytes, n: int, kind: str) -> None:
    assert asyncio.run(_exchange_with(answer, n)) == kind
