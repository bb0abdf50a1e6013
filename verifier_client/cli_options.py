"""Options several verifier commands share: the HTTP client's, and alpha. Light on purpose
(nothing here imports torch or the client), so that --help answers at once."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.cli_support import checked_number, non_negative_int, positive_float, positive_int
from models.errors import UserError

#: Bounds of the arguments that multiply queries and memory (each allocates per repeat/vote).
MAX_REPEATS = 10_000
MAX_VOTES = 101
MAX_PROBE_TRIALS = 10_000
MAX_PROBE_SAMPLES = 10_000


def url_value(value: str) -> str:
    """An ``http(s)://host[:port]`` server root, checked at parse time (a malformed URL or a
    port out of range is a usage error, not a traceback after the work)."""
    import httpx

    try:
        url = httpx.URL(value)
        port = url.port
    except (httpx.InvalidURL, ValueError, TypeError) as error:
        raise argparse.ArgumentTypeError(f"not a URL: {value!r} ({error})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise argparse.ArgumentTypeError(f"not an http(s)://host URL: {value!r}")
    if port is not None and not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port out of range in {value!r}")
    if any(ord(c) < 32 for c in value):
        raise argparse.ArgumentTypeError(f"control characters in URL {value!r}")
    return value.rstrip("/")


def model_name(value: str) -> str:
    """A model name as the server's repository allows it (``[a-z0-9][a-z0-9._-]*``, no
    ``..``): ``csrp/../copy`` would query ``copy`` while the report said ``csrp/../copy``."""
    from models.config import validate_model_name
    from models.errors import UserError

    try:
        validate_model_name(value)
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return value


def alpha_value(value: str) -> float:
    return checked_number(value, float, lambda v: 0.0 < v < 1.0, "in (0, 1)")


def utc_time(value: str) -> datetime:
    """An argparse type: an ISO 8601 time with its zone (``2026-11-01T00:00:00Z``), as UTC."""
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give the time zone (e.g. a trailing Z): {value!r}")
    return when.astimezone(UTC)


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in ``[low, high]`` (bounded at parse time, before work)."""
    def parse(value: str) -> int:
        return checked_number(value, int, lambda v: low <= v <= high, f"in [{low}, {high}]")

    parse.__name__ = f"integer in [{low}, {high}]"
    return parse

EXAMPLES = """examples:
  python -m verifier_client verify --url http://127.0.0.1:8000 --model pirate-csrp \\
      --fingerprints zoo/fingerprints --calibration zoo/calibration.json --repeats 100 \\
      --json verify-pirate-csrp.json
  python -m verifier_client verify --url http://10.0.0.5:8000 --model suspect \\
      --fingerprints ipguard.safetensors cae.safetensors --calibration calibration.json \\
      --repeats 20 --concurrency 4 --retries 2

  python -m verifier_client verify --url http://127.0.0.1:8000 --model csrp \
      --fingerprints zoo/fingerprints --calibration zoo/calibration.json --repeats 10 \
      --budget 60000          # more rounds of 10 repeats while a method is inconclusive

Exit status 0 when it ran (whatever the verdict); 3 when too few queries were answered to give
a verdict (the JSON says why); 2 with one line when it could not run."""


def add_client_arguments(p: argparse.ArgumentParser) -> None:
    """The HTTP client's options, shared by verify, calibrate (remote) and probe."""
    group = p.add_argument_group("HTTP client")
    group.add_argument("--batch-size", type=positive_int, default=100,
                       help="fingerprints per inference request (default 100)")
    group.add_argument("--concurrency", type=positive_int, default=8,
                       help="requests in flight at most (default 8)")
    group.add_argument("--timeout", type=positive_float, default=30.0,
                       help="seconds per request (default 30)")
    group.add_argument("--retries", type=non_negative_int, default=4,
                       help="retries of a failed request: connection errors, timeouts, 429, 5xx "
                            "(default 4)")
    group.add_argument("--backoff", type=float, default=0.25,
                       help="first backoff in seconds, doubled per retry, with jitter "
                            "(default 0.25)")
    group.add_argument("--protocol", choices=("auto", "binary", "json"), default="auto",
                       help="request encoding: binary tensors, JSON, or binary falling back to "
                            "JSON (default auto)")
    group.add_argument("--unreachable-after", type=positive_float, default=30.0, metavar="S",
                       help="give up once the server has not answered at all for S seconds "
                            "(circuit breaker; default 30)")
    group.add_argument("--wait-ready", type=bounded_int(0, 3600), default=0, metavar="S",
                       help="first wait up to S seconds for the server to be ready (a client "
                            "started beside its server; default 0: no wait)")


def client_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The ``OIPClient`` keyword arguments of the parsed HTTP-client options."""
    from verifier_client.oip_client import RetryPolicy

    if not args.backoff >= 0 or args.backoff == float("inf"):  # also refuses nan
        raise UserError(f"--backoff must be a finite number >= 0; got {args.backoff}")
    return {"batch_size": args.batch_size, "concurrency": args.concurrency,
            "timeout_s": args.timeout, "protocol": args.protocol,
            "unreachable_after_s": args.unreachable_after,
            "retry": RetryPolicy(attempts=args.retries + 1, backoff_s=args.backoff)}


def add_eot_arguments(p: Any, default_zoo: str = "REPOSITORY") -> None:
    """``--eot-fingerprints`` and ``--eot-calibration``: the sets for suspects behind a
    randomized front and their front-matched calibration (verify --adaptive, demo, validate)."""
    p.add_argument("--eot-fingerprints", type=Path, default=None, metavar="DIR",
                   help=f"EOT sets for suspects behind a randomized front (default "
                        f"{default_zoo}/fingerprints-eot)")
    p.add_argument("--eot-calibration", type=Path, default=None, metavar="FILE",
                   help=f"their front-matched calibration (default "
                        f"{default_zoo}/calibration-eot.json)")


def wait_for_server(args: argparse.Namespace) -> None:
    """``--wait-ready S``: poll the server's readiness for up to S seconds (no-op for 0)."""
    if not getattr(args, "wait_ready", 0):
        return
    import asyncio

    from verifier_client.oip_client import OIPClient

    async def wait() -> None:
        async with OIPClient(args.url) as client:
            await client.wait_ready(args.wait_ready)

    asyncio.run(wait())
