"""``python -m server`` / ``csrp-server``: serve a model repository, label-only.

Every flag can also come from an environment variable ``CSRP_SERVER_<FLAG>`` (e.g.
``CSRP_SERVER_MAX_BATCH_SIZE=32``); flags win. Bad configuration is one line and exit 2; a model
that fails to load in the background makes the process exit 1.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from models.cli_support import HelpFormatter, OneLineParser
from models.errors import UserError

EPILOG = """examples:
  python -m server --repository zoo
  python -m server --repository zoo --models copy,csrp --port 8080 --backend onnx
  CSRP_SERVER_REPOSITORY=zoo CSRP_SERVER_SEED=0 python -m server --max-batch-size 32

  curl -s localhost:8000/v2/health/ready
  curl -s -F files=@docs/examples/shirt.png localhost:8000/v1/models/target/classify
"""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m server", description=__doc__.splitlines()[0], epilog=EPILOG,
        formatter_class=HelpFormatter,
        argument_default=argparse.SUPPRESS)
    add = parser.add_argument
    add("--repository", metavar="DIR", help="model repository folder (required)")
    add("--models", metavar="A,B", help="comma-separated models to serve (default: all)")
    add("--host", help="bind address (default 127.0.0.1)")
    add("--port", type=int, help="port (default 8000)")
    add("--device", help="auto | cpu | cuda | cuda:N (default auto: cuda when present)")
    add("--backend", help="onnx | torch | auto (default auto: each config's backend)")
    add("--preprocess-in", choices=("graph", "torch"),
        help="where an ONNX entry's CSRP runs: graph (default: inside the ONNX serving graph, "
             "no torch) or torch (the torch transform before ONNX Runtime)")
    add("--max-batch-size", type=int, help="most images per executed batch and per request "
                                           "(default 64)")
    add("--max-queue-delay-ms", type=float, help="how long a batch waits for more requests "
                                                 "(default 2)")
    add("--max-queue-size", type=int, help="requests queued per model before 503 (default 1024)")
    add("--max-body-mb", type=float, help="largest binary or upload body in MiB (default 32)")
    add("--max-json-body-mb", type=float,
        help="largest JSON body in MiB (default 4: parsing JSON costs ~25x its size)")
    add("--body-timeout-s", type=float,
        help="seconds a client has to send its whole body, else 408 (default 30)")
    add("--exit-on-error", action=argparse.BooleanOptionalAction,
        help="stop when a model fails to load (default); --no-exit-on-error serves the others "
             "and answers 503 for the failed one")
    add("--allow-symlinks", action="store_true",
        help="allow entry folders and files that are symbolic links leading outside the "
             "repository (refused by default)")
    add("--seed", type=int, help="seed of the preprocessing random stream (default: from the OS)")
    add("--workers-threads", "--worker-threads", dest="workers_threads", type=int,
        help="intra-op threads for torch and ONNX Runtime (default: library default)")
    add("--head-timeout-s", type=float,
        help="seconds a client has to send a request's line and headers, and the most a "
             "connection may stay silent before its first request (default 10; then 408)")
    add("--max-head-kb", type=int,
        help="request headers in KiB at most (default 64: 431; the URL at most 16 KiB: 414)")
    add("--max-connections", type=int,
        help="open connections and requests at most; more get 503 (default 1024)")
    add("--log-level", help="critical | error | warning | info | debug (default info)")
    add("--access-log", action="store_true", help="log every request")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = vars(build_parser().parse_args(argv))
    except SystemExit as done:  # --help (0) or a usage error (2, its line already printed)
        return int(done.code or 0)
    from server.core.config import Settings, settings_error_line

    try:
        settings = Settings(**args)
        from server.pipeline.served_model import plan_models

        plan_models(settings)  # with --exit-on-error (default) the first bad entry stops here
    except ValidationError as error:
        print(f"error: {settings_error_line(error)}", file=sys.stderr)
        return 2
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return serve(settings)


#: Seconds in-flight requests get to finish after SIGTERM before they are cancelled.
GRACE_S = 5


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv4 or IPv6, as the host resolves), or one
    ``UserError`` line saying why not (in use, not an address of this machine)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise UserError(f"cannot listen on {host}:{port} ({error.strerror})") from None
    family, kind, proto, _, address = infos[0]
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(2048)
    except OSError as error:
        listener.close()
        raise UserError(f"cannot listen on {host}:{port} ({error.strerror or error})") from None
    return listener


def uvicorn_config(settings: Any, app: Any) -> Any:
    """The uvicorn configuration of a server (``serve`` and the tests use this one): the
    guarded HTTP protocol (head limits and deadline), the connection limit and the grace
    period of a shutdown."""
    import uvicorn

    from server.core.http_protocol import configured

    return uvicorn.Config(app, host=settings.host, port=settings.port,
                          log_level=settings.log_level, access_log=settings.access_log,
                          lifespan="on",
                          http=configured(16 * 1024, settings.max_head_kb * 1024,
                                          settings.head_timeout_s),
                          limit_concurrency=settings.max_connections,
                          timeout_graceful_shutdown=GRACE_S)


def _exit_zero(signum: int, frame: object) -> None:
    raise SystemExit(0)


def serve(settings: object) -> int:
    """Run uvicorn until SIGINT/SIGTERM; 1 if a model failed to load."""
    import uvicorn

    from server.core.config import Settings
    from server.main import create_app

    assert isinstance(settings, Settings)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    fatal: list[str] = []
    server: uvicorn.Server | None = None

    def on_fatal(message: str) -> None:
        fatal.append(message)
        if server is not None:
            server.should_exit = True

    try:  # the socket first: a port in use or an unassignable host is one line, exit 2
        listener = bind_listener(settings.host, settings.port)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # uvicorn re-raises SIGTERM after its graceful shutdown; exit 0 for it instead of dying
    signal.signal(signal.SIGTERM, _exit_zero)
    server = uvicorn.Server(uvicorn_config(settings, create_app(settings, on_fatal)))
    try:
        server.run(sockets=[listener])
    except KeyboardInterrupt:
        return 130
    if fatal:
        print(f"error: {fatal[0]}", file=sys.stderr)
        return 1
    return 0
