"""Load test of an Open Inference Protocol server: what CSRP costs a pirate's serving stack.

Two workloads, per model, on one server:

- **closed loop** (a concurrency sweep, perf_analyzer's default): C connections, each sends a
  request, waits for the answer and sends the next, for ``duration_s`` seconds;
- **open loop** (``rates``): requests arrive at a constant rate or as a Poisson process
  (seeded), whatever the server's answers do; a request's latency counts from its *scheduled*
  arrival, so a server that falls behind is not flattered (no coordinated omission). Arrivals
  that find ``max_inflight`` requests already open are not sent and count as ``not_sent``.

Per point (model x concurrency or rate):

- ``offered_rps``: requests issued per second (closed loop: attempts; open loop: arrivals);
  ``achieved_rps`` / ``achieved_ips``: successful requests / images per second, over the time
  from the first send until the last answer;
- ``latency_ms``: p50, p90, p95, p99, max and mean of successful requests, client side.
  Percentiles are *nearest-rank*: the smallest observed latency that at least q% of the requests
  did not exceed (never an interpolated value nobody saw);
- ``errors``: failed requests by kind (``http_503``, ``timeout``, ``connection``,
  ``bad_response``, ``not_sent``...); a failed request never counts as a latency;
- ``server``: the server's own per-stage breakdown from ``GET /metrics`` deltas taken before and
  after the point (``server/metrics.py`` names): queue wait per request; preprocessing
  (concatenation, copy to the device, CSRP) and inference (the backend) per executed batch and
  per image; the mean executed batch size; the server-side request time; failures by reason.

With two models (``--model csrp --model copy``: the same weights with and without CSRP), both
run back to back at every point (alternating which goes first) and ``overhead`` reports, per
point, first minus second: latency, throughput ratio and the server's per-stage times, i.e. what
the randomized preprocessing adds.

Bounds: every point lasts at most ``duration_s`` (<= 600 s) plus the drain of requests in flight
(each bounded by ``timeout_s``), sends at most ``max_requests`` requests, and a run plans at most
one hour. Loopback only by default: a load generator aimed at a server someone else runs is a
denial-of-service tool, and in this project's story the remote server is the *suspect's*; the
verifier queries it politely (``verify``) and load-tests only its own copy. ``allow_remote``
lifts the check for a server you operate (e.g. ``http://server:8000`` inside docker compose).
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import platform
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np

from models.atomic import write_json, write_text
from models.errors import UserError
from models.provenance import code_version, utc_now
from verifier_client.oip_client import (
    HEADER_LENGTH,
    BadResponseError,
    InputPlan,
    ModelMetadata,
    OIPClient,
    RetryPolicy,
    _Chunk,
    _to_wire,
    choose_input,
    labels_from_response,
)

__all__ = [
    "LoadSettings",
    "check_loopback",
    "latency_summary",
    "markdown_report",
    "parse_metrics",
    "percentile",
    "run_loadtest",
    "write_outputs",
]

MAX_DURATION_S = 600.0
MAX_PLANNED_S = 3600.0
MAX_CONCURRENCY = 1024
MAX_RATE = 50_000.0
MAX_REQUESTS = 1_000_000
PERCENTILES = (50, 90, 95, 99)
_BODIES = 8  # distinct request bodies per model, sent in turn


class LoadTestError(UserError):
    """The load test cannot run as asked (one clear line)."""


# --------------------------------------------------------------------------------------------
# settings, URL check, statistics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadSettings:
    url: str
    models: tuple[str, ...]
    concurrency: tuple[int, ...] = ()
    rates: tuple[float, ...] = ()
    poisson: bool = False
    duration_s: float = 10.0
    images_per_request: int = 1
    max_requests: int = 200_000
    max_inflight: int = 1024
    timeout_s: float = 30.0
    seed: int = 0
    allow_remote: bool = False

    def __post_init__(self) -> None:
        if not 1 <= len(self.models) <= 2:
            raise LoadTestError(f"give one or two models; got {len(self.models)}")
        if len(set(self.models)) != len(self.models):
            raise LoadTestError("the two models must differ")
        if not self.concurrency and not self.rates:
            raise LoadTestError("nothing to run: give --concurrency levels and/or --rate")
        if any(not 1 <= c <= MAX_CONCURRENCY for c in self.concurrency):
            raise LoadTestError(f"concurrency must be in 1..{MAX_CONCURRENCY}")
        if any(not 0 < r <= MAX_RATE for r in self.rates):
            raise LoadTestError(f"rate must be in (0, {MAX_RATE:g}] requests/s")
        if self.poisson and not self.rates:
            raise LoadTestError("--poisson needs --rate")
        if not 0 < self.duration_s <= MAX_DURATION_S:
            raise LoadTestError(f"duration must be in (0, {MAX_DURATION_S:g}] s")
        if not 1 <= self.max_requests <= MAX_REQUESTS:
            raise LoadTestError(f"max requests must be in 1..{MAX_REQUESTS}")
        if not 1 <= self.max_inflight <= 65_536:
            raise LoadTestError("max in-flight must be in 1..65536")
        if self.images_per_request < 1 or self.timeout_s <= 0:
            raise LoadTestError("images per request must be >= 1 and the timeout > 0")
        planned = self.planned_seconds()
        if planned > MAX_PLANNED_S:
            raise LoadTestError(f"the run would take about {planned:.0f} s (points x models x "
                                f"duration); the limit is {MAX_PLANNED_S:.0f} s")

    def planned_seconds(self) -> float:
        return (len(self.concurrency) + len(self.rates)) * len(self.models) * self.duration_s


def check_loopback(url: str, allow_remote: bool = False) -> tuple[str, int]:
    """``(host, port)`` of an ``http://`` URL; :class:`LoadTestError` unless the host is a
    loopback address or ``localhost`` (or ``allow_remote``)."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise LoadTestError(f"the load test speaks plain http:// only; got {url!r}")
    host = parts.hostname
    if not host:
        raise LoadTestError(f"no host in {url!r}")
    try:
        port = parts.port or 80
    except ValueError:
        raise LoadTestError(f"bad port in {url!r}") from None
    if not allow_remote:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host.lower() == "localhost"
        if not loopback:
            raise LoadTestError(f"{host} is not a loopback address: the load test only targets "
                                "a server on this machine (pass --allow-remote for a server you "
                                "operate)")
    return host, port


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of ascending ``sorted_values``: the smallest value that at least
    ``q`` percent of the values do not exceed (``q`` in (0, 100]). NaN for no values."""
    if not 0 < q <= 100:
        raise ValueError(f"q must be in (0, 100]; got {q}")
    if not sorted_values:
        return math.nan
    rank = math.ceil(q / 100.0 * len(sorted_values))
    return float(sorted_values[max(rank, 1) - 1])


def latency_summary(latencies_s: Iterable[float]) -> dict[str, float | None]:
    """p50/p90/p95/p99/max/mean in milliseconds (``None`` each when there is no latency)."""
    values = sorted(latencies_s)
    keys = [f"p{q}" for q in PERCENTILES] + ["max", "mean"]
    if not values:
        return dict.fromkeys(keys)
    summary: dict[str, float | None] = {f"p{q}": round(percentile(values, q) * 1e3, 3)
                                        for q in PERCENTILES}
    summary["max"] = round(values[-1] * 1e3, 3)
    summary["mean"] = round(sum(values) / len(values) * 1e3, 3)
    return summary


# --------------------------------------------------------------------------------------------
# server metrics
# --------------------------------------------------------------------------------------------

MetricSnapshot = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> MetricSnapshot:
    """Prometheus text -> ``{(sample name, sorted labels): value}``."""
    from prometheus_client.parser import text_string_to_metric_families

    snapshot: MetricSnapshot = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            snapshot[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return snapshot


def _delta(before: MetricSnapshot, after: MetricSnapshot, name: str, model: str,
           **labels: str) -> float:
    key = (name, tuple(sorted({"model": model, **labels}.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def stage_breakdown(before: MetricSnapshot, after: MetricSnapshot,
                    model: str) -> dict[str, Any]:
    """The server's per-stage times for ``model`` between two snapshots (``None`` where the
    server executed nothing)."""

    def ratio(numerator: float, denominator: float, scale: float) -> float | None:
        return round(numerator / denominator * scale, 4) if denominator > 0 else None

    def hist(stage: str) -> tuple[float, float]:
        name = f"inference_{stage}_duration_seconds"
        return (_delta(before, after, f"{name}_sum", model),
                _delta(before, after, f"{name}_count", model))

    images = _delta(before, after, "inference_count_total", model)
    batches = _delta(before, after, "inference_batch_count_total", model)
    queue_sum, queue_n = hist("queue")
    pre_sum, pre_n = hist("preprocess")
    infer_sum, infer_n = hist("compute")
    request_sum, request_n = hist("request")
    failures = {}
    for (name, labels), value in after.items():
        label_map = dict(labels)
        if name == "inference_request_failure_total" and label_map.get("model") == model:
            count = value - before.get((name, labels), 0.0)
            if count:
                failures[label_map.get("reason", "unknown")] = int(count)
    return {
        "requests": int(_delta(before, after, "inference_request_total", model)),
        "images": int(images),
        "batches": int(batches),
        "mean_batch_size": ratio(images, batches, 1.0),
        "queue_ms_per_request": ratio(queue_sum, queue_n, 1e3),
        "preprocess_ms_per_batch": ratio(pre_sum, pre_n, 1e3),
        "preprocess_us_per_image": ratio(pre_sum, images, 1e6),
        "infer_ms_per_batch": ratio(infer_sum, infer_n, 1e3),
        "infer_us_per_image": ratio(infer_sum, images, 1e6),
        "request_ms": ratio(request_sum, request_n, 1e3),
        "failures": failures,
    }


# --------------------------------------------------------------------------------------------
# a small HTTP/1.1 keep-alive client
# --------------------------------------------------------------------------------------------
# Why not httpx here: the client shares the machine's cores with the server, so every
# millisecond of client CPU is charged to the server. Measured on this 2-core machine (one-image
# requests to the zoo's ONNX model, 8 connections, 5 s): the verifier's httpx-based OIPClient
# spends about 1.1 ms of client CPU per request and the server reached half the throughput it
# reached with this client, which spends about 0.15 ms (answer checks and /metrics scrapes
# included). This client only does what the load test needs: one POST at a time per keep-alive
# connection, Content-Length or chunked answers, pre-encoded request bytes (OIPClient's binary
# tensor encoding). Answers are still checked with the verifier's own parser (exactly N integer
# labels), and httpx still does the few non-timed calls (metadata, /metrics).


class _RequestError(Exception):
    def __init__(self, kind: str, reconnect: bool = True) -> None:
        super().__init__(kind)
        self.kind, self.reconnect = kind, reconnect


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int, timeout_s: float) -> _Connection:
        try:
            async with asyncio.timeout(timeout_s):
                reader, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            raise _RequestError("timeout") from None
        except OSError:
            raise _RequestError("connection") from None
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
class _Target:
    """One model's pre-encoded requests."""

    model: str
    plan: InputPlan
    requests: list[bytes]
    images_per_request: int
    parameters: dict[str, Any]


def _image_shape(meta: ModelMetadata) -> tuple[int, int, int]:
    """(C, H, W) of the images a model takes, from its declared inputs."""
    for spec in meta.inputs:
        shape = spec.shape
        if len(shape) == 4 and spec.datatype == "UINT8" and shape[3] in (1, 3):
            return int(shape[3]), int(shape[1]), int(shape[2])
        if len(shape) == 4 and spec.datatype == "FP32" and shape[1] in (1, 3):
            return int(shape[1]), int(shape[2]), int(shape[3])
    raise LoadTestError(f"model {meta.name!r}: no 4-d UINT8 NHWC or FP32 NCHW image input "
                        f"declared")


def _encode_requests(plan: InputPlan, host: str, port: int, k: int,
                     rng: np.random.Generator) -> list[bytes]:
    """``_BODIES`` whole HTTP requests (head and binary-tensor body, as ``OIPClient`` encodes
    them) of ``k`` random 8-bit images each."""
    c, h, w = plan.item_shape
    requests = []
    for _ in range(_BODIES):
        images = rng.integers(0, 256, size=(k, c, h, w)).astype(np.float32) / 255.0
        body, header_length = _Chunk(_to_wire(plan, images)).binary(plan)
        head = (f"POST /v2/models/{plan.model}/infer HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Content-Type: application/octet-stream\r\n{HEADER_LENGTH}: {header_length}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        requests.append(head.encode("latin-1") + body)
    return requests


async def _prepare(settings: LoadSettings, host: str, port: int,
                   control: httpx.AsyncClient) -> list[_Target]:
    """Check the server is ready, read each model's metadata, encode its requests."""
    rng = np.random.default_rng(settings.seed)
    targets = []
    async with OIPClient(settings.url, retry=RetryPolicy(attempts=2, backoff_s=0.2)) as client:
        await client.check_ready()
        for model in settings.models:
            meta = await client.model_metadata(model)
            plan = choose_input(meta, _image_shape(meta))
            limit = meta.max_batch_size
            if limit is not None and settings.images_per_request > limit:
                raise LoadTestError(f"model {model!r} takes at most {limit} images per request; "
                                    f"asked for {settings.images_per_request}")
            parameters = (await control.get(f"/v2/models/{model}")).json().get("parameters")
            parameters = parameters if isinstance(parameters, dict) else {}
            targets.append(_Target(
                model, plan,
                _encode_requests(plan, host, port, settings.images_per_request, rng),
                settings.images_per_request,
                {key: parameters.get(key) for key in ("backend", "device", "providers",
                                                      "preprocessing", "max_batch_size")}))
    return targets


# --------------------------------------------------------------------------------------------
# the workloads
# --------------------------------------------------------------------------------------------


@dataclass
class _Tally:
    issued: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def failed(self, failure: _RequestError) -> None:
        self.errors[failure.kind] += 1


async def _send(connection: _Connection, target: _Target, request: bytes,
                timeout_s: float) -> bool:
    """One request on ``connection``: True when the connection stays usable; raises
    :class:`_RequestError` unless the answer holds exactly N integer labels."""
    try:
        async with asyncio.timeout(timeout_s):
            status, headers, body = await connection.exchange(request)
    except TimeoutError:
        raise _RequestError("timeout") from None
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        raise _RequestError("connection") from None
    except (ValueError, IndexError):
        raise _RequestError("bad_response") from None
    keep = headers.get("connection", "").lower() != "close"
    if status != 200:
        raise _RequestError(f"http_{status}", reconnect=not keep)
    try:
        labels_from_response(httpx.Response(status, headers=headers, content=body),
                             target.images_per_request)
    except BadResponseError:
        raise _RequestError("bad_response", reconnect=not keep) from None
    return keep


async def _closed_loop(target: _Target, host: str, port: int, concurrency: int,
                       settings: LoadSettings) -> tuple[_Tally, float, float]:
    """C workers, one keep-alive connection each (opened before the clock starts)."""
    tally = _Tally()
    opened = await asyncio.gather(*(_Connection.open(host, port, settings.timeout_s)
                                    for _ in range(concurrency)), return_exceptions=True)
    if any(isinstance(c, BaseException) for c in opened):
        for connection in opened:
            if isinstance(connection, _Connection):
                connection.close()
        raise LoadTestError(f"cannot open {concurrency} connections to {host}:{port}")

    async def worker(connection: _Connection | None, turn: int, deadline: float) -> None:
        while time.perf_counter() < deadline and tally.issued < settings.max_requests:
            tally.issued += 1
            request = target.requests[turn % len(target.requests)]
            turn += 1
            started = time.perf_counter()
            try:
                if connection is None:
                    connection = await _Connection.open(host, port, settings.timeout_s)
                keep = await _send(connection, target, request, settings.timeout_s)
            except _RequestError as failure:
                tally.failed(failure)
                if failure.reconnect and connection is not None:
                    connection.close()
                    connection = None
                if failure.kind in ("connection", "timeout"):
                    await asyncio.sleep(0.01)  # do not spin on a dead server
                continue
            tally.latencies.append(time.perf_counter() - started)
            if not keep:
                connection.close()
                connection = None
        if connection is not None:
            connection.close()

    started = time.perf_counter()
    deadline = started + settings.duration_s
    await asyncio.gather(*(worker(c, i, deadline) for i, c in enumerate(opened)))  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    return tally, elapsed, elapsed


def _arrivals(rate: float, duration_s: float, poisson: bool, limit: int,
              rng: random.Random) -> list[float]:
    """Send times (seconds from the start) within ``duration_s``, at most ``limit``: every
    ``1/rate`` s, or with exponential gaps of mean ``1/rate`` (a Poisson process)."""
    times: list[float] = []
    t = 0.0
    while len(times) < limit:
        t = t + rng.expovariate(rate) if poisson else len(times) / rate
        if t >= duration_s:
            break
        times.append(t)
    return times


async def _open_loop(target: _Target, host: str, port: int, rate: float,
                     settings: LoadSettings, rng: random.Random) -> tuple[_Tally, float, float]:
    """Requests at scheduled times on a pool of keep-alive connections (grown on demand)."""
    tally = _Tally()
    idle: list[_Connection] = []
    in_flight: set[asyncio.Task[None]] = set()

    async def one(request: bytes, scheduled: float) -> None:
        connection = idle.pop() if idle else None
        try:
            if connection is None:
                connection = await _Connection.open(host, port, settings.timeout_s)
            keep = await _send(connection, target, request, settings.timeout_s)
        except _RequestError as failure:
            tally.failed(failure)
            if connection is not None:
                if failure.reconnect:
                    connection.close()
                else:
                    idle.append(connection)
            return
        tally.latencies.append(time.perf_counter() - scheduled)  # from the scheduled arrival
        if keep:
            idle.append(connection)
        else:
            connection.close()

    schedule = _arrivals(rate, settings.duration_s, settings.poisson, settings.max_requests, rng)
    started = time.perf_counter()
    for index, offset in enumerate(schedule):
        scheduled = started + offset
        wait = scheduled - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        tally.issued += 1
        if len(in_flight) >= settings.max_inflight:
            tally.errors["not_sent"] += 1
            continue
        task = asyncio.create_task(one(target.requests[index % len(target.requests)], scheduled))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.gather(*in_flight)
    elapsed = time.perf_counter() - started
    for connection in idle:
        connection.close()
    # Arrivals were offered over the whole window, or up to the last one when capped.
    window = (settings.duration_s if len(schedule) < settings.max_requests
              else schedule[-1] + 1.0 / rate)
    return tally, elapsed, window


async def _scrape(client: httpx.AsyncClient) -> MetricSnapshot:
    try:
        response = await client.get("/metrics")
    except httpx.HTTPError as error:
        raise LoadTestError(f"GET /metrics failed: {error}") from None
    if response.status_code != 200:
        raise LoadTestError(f"GET /metrics answered {response.status_code}")
    return parse_metrics(response.text)


def _point(target: _Target, mode: str, level: float, tally: _Tally, elapsed: float,
           window: float, server: dict[str, Any], settings: LoadSettings) -> dict[str, Any]:
    ok = len(tally.latencies)
    return {
        "model": target.model,
        "mode": mode,
        "concurrency": int(level) if mode == "closed" else None,
        "rate": level if mode == "open" else None,
        "arrivals": ("poisson" if settings.poisson else "constant") if mode == "open" else None,
        "issued": tally.issued,
        "completed": ok,
        "failed": sum(tally.errors.values()),
        "elapsed_s": round(elapsed, 3),
        "offered_rps": round(tally.issued / window, 2) if window > 0 else None,
        "achieved_rps": round(ok / elapsed, 2) if elapsed > 0 else None,
        "achieved_ips": round(ok * target.images_per_request / elapsed, 2) if elapsed > 0
        else None,
        "hit_max_requests": tally.issued >= settings.max_requests,
        "latency_ms": latency_summary(tally.latencies),
        "errors": dict(sorted(tally.errors.items())),
        "server": server,
    }


def _level_label(point: dict[str, Any]) -> str:
    return (f"c={point['concurrency']}" if point["mode"] == "closed"
            else f"r={point['rate']:g}/s")


async def _run(settings: LoadSettings, progress: bool) -> dict[str, Any]:
    host, port = check_loopback(settings.url, settings.allow_remote)
    levels = ([("closed", float(c)) for c in settings.concurrency]
              + [("open", float(r)) for r in settings.rates])
    rng = random.Random(settings.seed)
    points: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=settings.url, timeout=10.0) as control:
        targets = await _prepare(settings, host, port, control)
        total = len(levels) * len(targets)
        for index, (mode, level) in enumerate(levels):
            order = targets if index % 2 == 0 else targets[::-1]  # ABBA: no side always first
            for target in order:
                before = await _scrape(control)
                if mode == "closed":
                    tally, elapsed, window = await _closed_loop(target, host, port, int(level),
                                                                settings)
                else:
                    tally, elapsed, window = await _open_loop(target, host, port, level,
                                                              settings, rng)
                after = await _scrape(control)
                point = _point(target, mode, level, tally, elapsed, window,
                               stage_breakdown(before, after, target.model), settings)
                points.append(point)
                if progress:
                    latency = point["latency_ms"]
                    print(f"[{len(points)}/{total}] {target.model} {_level_label(point)}: "
                          f"{point['achieved_rps']} req/s, p50 {latency['p50']} ms, p99 "
                          f"{latency['p99']} ms, {point['failed']} failed", file=sys.stderr)
    models = [t.model for t in targets]
    return {
        "url": settings.url,
        "models": models,
        "server_models": {t.model: t.parameters for t in targets},
        "settings": {k: v for k, v in asdict(settings).items() if k not in ("url", "models")},
        "client": {"implementation": "asyncio HTTP/1.1 keep-alive, binary tensor requests",
                   "python": platform.python_version(), "code_version": code_version()},
        "created": utc_now(),
        "points": points,
        "overhead": overhead(points, models) if len(models) == 2 else [],
    }


def run_loadtest(settings: LoadSettings, progress: bool = False) -> dict[str, Any]:
    """Run every point and return the report (see the module docstring)."""
    started = time.perf_counter()
    report = asyncio.run(_run(settings, progress))
    report["wall_s"] = round(time.perf_counter() - started, 2)
    return report


# --------------------------------------------------------------------------------------------
# two models: the preprocessing overhead
# --------------------------------------------------------------------------------------------


def _difference(a: float | None, b: float | None, digits: int = 3) -> float | None:
    return None if a is None or b is None else round(a - b, digits)


def overhead(points: list[dict[str, Any]], models: Sequence[str]) -> list[dict[str, Any]]:
    """Per point: ``models[0]`` minus ``models[1]`` (latency, server stages) and the ratio of
    their achieved throughputs."""
    first, second = models
    keyed = {(p["model"], p["mode"], p["concurrency"], p["rate"]): p for p in points}
    rows = []
    for point in points:
        if point["model"] != first:
            continue
        other = keyed.get((second, point["mode"], point["concurrency"], point["rate"]))
        if other is None:
            continue
        a, b = point, other
        rows.append({
            "mode": a["mode"], "concurrency": a["concurrency"], "rate": a["rate"],
            "minus": f"{first} - {second}",
            "p50_ms": _difference(a["latency_ms"]["p50"], b["latency_ms"]["p50"]),
            "p99_ms": _difference(a["latency_ms"]["p99"], b["latency_ms"]["p99"]),
            "mean_ms": _difference(a["latency_ms"]["mean"], b["latency_ms"]["mean"]),
            "throughput_ratio": (round(a["achieved_rps"] / b["achieved_rps"], 4)
                                 if a["achieved_rps"] and b["achieved_rps"] else None),
            **{key: _difference(a["server"][key], b["server"][key], 4) for key in (
                "queue_ms_per_request", "preprocess_ms_per_batch", "preprocess_us_per_image",
                "infer_ms_per_batch", "infer_us_per_image", "request_ms")},
        })
    return rows


# --------------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_report(report: dict[str, Any], command: str | None = None) -> str:
    """The report as Markdown: settings, one row per point, and the overhead table."""
    s = report["settings"]
    lines = ["# Load test", ""]
    if command:
        lines += ["```", command, "```", ""]
    lines += [f"Server {report['url']}; {s['images_per_request']} image(s) per request, "
              f"{s['duration_s']:g} s per point, at most {s['max_requests']} requests per point; "
              f"run {report['created']}, {report.get('wall_s', '-')} s in all.", ""]
    for model, parameters in report["server_models"].items():
        lines.append(f"- `{model}`: preprocessing {parameters.get('preprocessing')}, backend "
                     f"{parameters.get('backend')} on {parameters.get('device')} "
                     f"({', '.join(parameters.get('providers') or []) or '-'}), max batch "
                     f"{parameters.get('max_batch_size')}")
    lines += ["", "Latency in ms (client side, nearest-rank percentiles); server stages from "
              "`/metrics` deltas: queue per request, preprocess and infer per executed batch.", "",
              "| model | load | offered req/s | achieved req/s | img/s | p50 | p90 | p95 | p99 | "
              "max | errors | queue ms | preprocess ms/batch | infer ms/batch | batch |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    models = report["models"]
    rows = sorted(report["points"], key=lambda p: (p["mode"], p["concurrency"] or 0,
                                                   p["rate"] or 0.0, models.index(p["model"])))
    for p in rows:
        lat, srv = p["latency_ms"], p["server"]
        errors = ", ".join(f"{k} {v}" for k, v in p["errors"].items()) or "0"
        lines.append(
            f"| {p['model']} | {_level_label(p)} | {_fmt(p['offered_rps'], 1)} | "
            f"{_fmt(p['achieved_rps'], 1)} | {_fmt(p['achieved_ips'], 1)} | {_fmt(lat['p50'])} | "
            f"{_fmt(lat['p90'])} | {_fmt(lat['p95'])} | {_fmt(lat['p99'])} | {_fmt(lat['max'])} | "
            f"{errors} | {_fmt(srv['queue_ms_per_request'], 3)} | "
            f"{_fmt(srv['preprocess_ms_per_batch'], 3)} | {_fmt(srv['infer_ms_per_batch'], 3)} | "
            f"{_fmt(srv['mean_batch_size'], 1)} |")
    if report["overhead"]:
        minus = report["overhead"][0]["minus"]
        lines += ["", f"## Preprocessing overhead ({minus}, same server, same run)", "",
                  "| load | p50 ms | p99 ms | throughput ratio | preprocess ms/batch | "
                  "preprocess us/image | infer ms/batch | queue ms | server request ms |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in report["overhead"]:
            cells = [_fmt(row[key], digits) for key, digits in (
                ("p50_ms", 3), ("p99_ms", 3), ("throughput_ratio", 3),
                ("preprocess_ms_per_batch", 3), ("preprocess_us_per_image", 1),
                ("infer_ms_per_batch", 3), ("queue_ms_per_request", 3), ("request_ms", 3))]
            lines.append(f"| {_level_label(row)} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def plot_report(report: dict[str, Any], path: Path) -> None:
    """Latency (p50 solid, p99 dashed) against achieved images/s, one colour per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    figure, axes = plt.subplots(figsize=(7.5, 4.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    series = sorted({(p["model"], p["mode"]) for p in report["points"]},
                    key=lambda pair: (report["models"].index(pair[0]), pair[1]))
    for index, (model, mode) in enumerate(series):
        chosen = [p for p in report["points"] if p["model"] == model and p["mode"] == mode
                  and p["latency_ms"]["p50"] is not None]
        chosen.sort(key=lambda p: p["concurrency"] or p["rate"] or 0)
        if not chosen:
            continue
        x = [p["achieved_ips"] for p in chosen]
        colour = colours[index % len(colours)]
        name = model if len({m for m, _ in series}) == len(series) else f"{model} ({mode})"
        axes.plot(x, [p["latency_ms"]["p50"] for p in chosen], "o-", color=colour,
                  label=f"{name} p50")
        axes.plot(x, [p["latency_ms"]["p99"] for p in chosen], "s--", color=colour,
                  label=f"{name} p99", alpha=0.7)
        for p, xi in zip(chosen, x, strict=True):
            axes.annotate(_level_label(p), (xi, p["latency_ms"]["p50"]), fontsize=7,
                          textcoords="offset points", xytext=(3, -10))
    axes.set_xlabel("achieved throughput (images/s)")
    axes.set_ylabel("latency (ms)")
    axes.set_yscale("log")
    axes.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes.grid(True, which="both", alpha=0.3)
    axes.set_title(f"Latency vs throughput, {report['settings']['images_per_request']} image(s) "
                   "per request")
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    figure.savefig(tmp, dpi=120, format="png")
    plt.close(figure)
    tmp.replace(path)


def write_outputs(report: dict[str, Any], out: str | Path,
                  command: str | None = None) -> dict[str, Path]:
    """``loadtest.json``, ``loadtest.md`` and ``loadtest.png`` under ``out`` (atomic writes)."""
    out = Path(out)
    paths = {"json": out / "loadtest.json", "markdown": out / "loadtest.md",
             "plot": out / "loadtest.png"}
    write_json(paths["json"], {**report, "command": command} if command else report)
    write_text(paths["markdown"], markdown_report(report, command))
    plot_report(report, paths["plot"])
    return paths
