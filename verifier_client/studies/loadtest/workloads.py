"""The two workloads: a closed loop (C connections, send-wait-send) and an open loop (arrivals
at a constant rate or a seeded Poisson process; latency counts from the scheduled arrival, so a
server that falls behind is not flattered: no coordinated omission)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from verifier_client.studies.loadtest.settings import LoadSettings, LoadTestError
from verifier_client.studies.loadtest.wire import Connection, RequestError, Target, send


@dataclass
class Tally:
    issued: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def failed(self, failure: RequestError) -> None:
        self.errors[failure.kind] += 1


async def attempt(connection: Connection | None, host: str, port: int, target: Target,
                  request: bytes, timeout_s: float
                  ) -> tuple[Connection | None, bool, RequestError | None]:
    """Send one request, opening a connection first when ``connection`` is ``None``.

    Returns the connection (``None`` if it could not be opened), whether it stays usable, and
    the failure (``None`` when the answer held the right labels).
    """
    try:
        if connection is None:
            connection = await Connection.open(host, port, timeout_s)
        return connection, await send(connection, target, request, timeout_s), None
    except RequestError as failure:
        return connection, False, failure


async def closed_loop(target: Target, host: str, port: int, concurrency: int,
                       settings: LoadSettings) -> tuple[Tally, float, float]:
    """C workers, one keep-alive connection each (opened before the clock starts)."""
    tally = Tally()
    opened = await asyncio.gather(*(Connection.open(host, port, settings.timeout_s)
                                    for _ in range(concurrency)), return_exceptions=True)
    if any(isinstance(c, BaseException) for c in opened):
        for connection in opened:
            if isinstance(connection, Connection):
                connection.close()
        raise LoadTestError(f"cannot open {concurrency} connections to {host}:{port}")

    async def worker(connection: Connection | None, turn: int, deadline: float) -> None:
        while time.perf_counter() < deadline and tally.issued < settings.max_requests:
            tally.issued += 1
            request = target.requests[turn % len(target.requests)]
            turn += 1
            started = time.perf_counter()
            connection, keep, failure = await attempt(connection, host, port, target, request,
                                                      settings.timeout_s)
            if failure is not None:
                tally.failed(failure)
                if failure.reconnect and connection is not None:
                    connection.close()
                    connection = None
                if failure.kind in ("connection", "timeout"):
                    await asyncio.sleep(0.01)  # do not spin on a dead server
                continue
            tally.latencies.append(time.perf_counter() - started)
            if not keep and connection is not None:
                connection.close()
                connection = None
        if connection is not None:
            connection.close()

    started = time.perf_counter()
    deadline = started + settings.duration_s
    await asyncio.gather(*(worker(c, i, deadline) for i, c in enumerate(opened)))  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    return tally, elapsed, elapsed


def arrivals(rate: float, duration_s: float, poisson: bool, limit: int,
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


async def open_loop(target: Target, host: str, port: int, rate: float,
                     settings: LoadSettings, rng: random.Random) -> tuple[Tally, float, float]:
    """Requests at scheduled times on a pool of keep-alive connections (grown on demand)."""
    tally = Tally()
    idle: list[Connection] = []
    in_flight: set[asyncio.Task[None]] = set()

    async def one(request: bytes, scheduled: float) -> None:
        connection, keep, failure = await attempt(idle.pop() if idle else None, host, port,
                                                  target, request, settings.timeout_s)
        if failure is not None:
            tally.failed(failure)
            keep = not failure.reconnect
        else:  # latency from the scheduled arrival
            tally.latencies.append(time.perf_counter() - scheduled)
        if connection is not None:
            if keep:
                idle.append(connection)
            else:
                connection.close()

    schedule = arrivals(rate, settings.duration_s, settings.poisson, settings.max_requests, rng)
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
