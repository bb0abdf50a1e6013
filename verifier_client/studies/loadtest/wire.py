"""The load generator's wire: a small HTTP/1.1 keep-alive client and pre-encoded requests.

Why not httpx here: the client shares the machine's cores with the server, so every
millisecond of client CPU is charged to the server. Measured on this 2-core machine (one-image
requests to the zoo's ONNX model, 8 connections, 5 s): the verifier's httpx-based OIPClient
spends about 1.1 ms of client CPU per request and the server reached half the throughput it
reached with this client, which spends about 0.15 ms (answer checks and /metrics scrapes
included). This client only does what the load test needs: one POST at a time per keep-alive
connection, Content-Length or chunked answers, pre-encoded request bytes (the verifier's own
binary tensor encoding, ``oip_client.encode_binary``). Answers are still checked with the
verifier's own parser (exactly N integer labels), and httpx still does the few non-timed calls
(metadata, /metrics).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from verifier_client.oip_client import (
    HEADER_LENGTH,
    BadResponseError,
    InputPlan,
    OIPClient,
    RetryPolicy,
    choose_input,
    encode_binary,
    image_shape,
    labels_from_response,
    to_wire,
)
from verifier_client.studies.loadtest.settings import LoadSettings, LoadTestError

BODIES = 8  # distinct request bodies per model, sent in turn


class RequestError(Exception):
    def __init__(self, kind: str, reconnect: bool = True) -> None:
        super().__init__(kind)
        self.kind, self.reconnect = kind, reconnect


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int, timeout_s: float) -> Connection:
        try:
            async with asyncio.timeout(timeout_s):
                reader, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            raise RequestError("timeout") from None
        except OSError:
            raise RequestError("connection") from None
        return cls(reader, writer)

    def close(self) -> None:
        self.writer.close()

    async def _read_body(self, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")  # no trailers from our server
                    return b"".join(parts)
                parts.append((await self.reader.readexactly(size + 2))[:-2])
        return await self.reader.readexactly(int(headers.get("content-length", "0")))

    async def exchange(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send one pre-encoded request, read its answer: (status, lower-case headers, body)."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return status, headers, await self._read_body(headers)


@dataclass
class Target:
    """One model's pre-encoded requests."""

    model: str
    plan: InputPlan
    requests: list[bytes]
    images_per_request: int
    parameters: dict[str, Any]


def encode_requests(plan: InputPlan, host: str, port: int, k: int,
                     rng: np.random.Generator) -> list[bytes]:
    """``BODIES`` whole HTTP requests (head and binary-tensor body, as ``OIPClient`` encodes
    them) of ``k`` random 8-bit images each."""
    c, h, w = plan.item_shape
    requests = []
    for _ in range(BODIES):
        images = rng.integers(0, 256, size=(k, c, h, w)).astype(np.float32) / 255.0
        body, header_length = encode_binary(plan, to_wire(plan, images))
        head = (f"POST /v2/models/{plan.model}/infer HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Content-Type: application/octet-stream\r\n{HEADER_LENGTH}: {header_length}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        requests.append(head.encode("latin-1") + body)
    return requests


async def prepare(settings: LoadSettings, host: str, port: int,
                   control: httpx.AsyncClient) -> list[Target]:
    """Check the server is ready, read each model's metadata, encode its requests."""
    rng = np.random.default_rng(settings.seed)
    targets = []
    async with OIPClient(settings.url, retry=RetryPolicy(attempts=2, backoff_s=0.2)) as client:
        await client.check_ready()
        for model in settings.models:
            meta = await client.model_metadata(model)
            shape = image_shape(meta)
            if shape is None:
                raise LoadTestError(f"model {model!r}: no image input of known size declared")
            plan = choose_input(meta, shape)
            limit = meta.max_batch_size
            if limit is not None and settings.images_per_request > limit:
                raise LoadTestError(f"model {model!r} takes at most {limit} images per request; "
                                    f"asked for {settings.images_per_request}")
            parameters = (await control.get(f"/v2/models/{model}")).json().get("parameters")
            parameters = parameters if isinstance(parameters, dict) else {}
            targets.append(Target(
                model, plan,
                encode_requests(plan, host, port, settings.images_per_request, rng),
                settings.images_per_request,
                {key: parameters.get(key) for key in ("backend", "device", "providers",
                                                      "preprocessing", "max_batch_size")}))
    return targets


async def send(connection: Connection, target: Target, request: bytes,
                timeout_s: float) -> bool:
    """One request on ``connection``: True when the connection stays usable; raises
    :class:`RequestError` unless the answer holds exactly N integer labels."""
    try:
        async with asyncio.timeout(timeout_s):
            status, headers, body = await connection.exchange(request)
    except TimeoutError:
        raise RequestError("timeout") from None
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        raise RequestError("connection") from None
    except (ValueError, IndexError):
        raise RequestError("bad_response") from None
    keep = headers.get("connection", "").lower() != "close"
    if status != 200:
        raise RequestError(f"http_{status}", reconnect=not keep)
    try:
        labels_from_response(httpx.Response(status, headers=headers, content=body),
                             target.images_per_request)
    except BadResponseError:
        raise RequestError("bad_response", reconnect=not keep) from None
    return keep
