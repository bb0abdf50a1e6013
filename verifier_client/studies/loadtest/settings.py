"""Load-test settings and errors: the ground floor of ``verifier_client.studies.loadtest``.

Bounds: every point lasts at most ``MAX_DURATION_S`` plus the drain of requests in flight (each
bounded by the timeout), sends at most ``max_requests`` requests, and a run plans at most one
hour. Loopback only by default (:func:`check_loopback`): a load generator aimed at a server
someone else runs is a denial-of-service tool, and in this project's story the remote server is
the *suspect's*; the verifier queries it politely (``verify``) and load-tests only its own copy.
``allow_remote`` lifts the check for a server you operate (e.g. ``http://server:8000`` inside
docker compose).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from models.errors import UserError

MAX_DURATION_S = 600.0
MAX_PLANNED_S = 3600.0
MAX_CONCURRENCY = 1024
MAX_RATE = 50_000.0
MAX_REQUESTS = 1_000_000


class LoadTestError(UserError):
    """The load test cannot run as asked (one clear line)."""


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
