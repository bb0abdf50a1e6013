"""``python -m server`` / ``csrp-server``: serve a model repository, label-only.

Every flag can also come from an environment variable ``CSRP_SERVER_<FLAG>`` (e.g.
``CSRP_SERVER_MAX_BATCH_SIZE=32``); flags win. Bad configuration is one line and exit 2; a model
that fails to load in the background makes the process exit 1.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

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

    # uvicorn re-raises SIGTERM after its graceful shutdown; exit 0 for it instead of dying
    signal.signal(signal.SIGTERM, _exit_zero)
    config = uvicorn.Config(create_app(settings, on_fatal), host=settings.host,
                            port=settings.port, log_level=settings.log_level,
                            access_log=settings.access_log, lifespan="on",
                            timeout_graceful_shutdown=10)
    server = uvicorn.Server(config)
    try:
        server.run()
    except KeyboardInterrupt:
        return 130
    if fatal:
        print(f"error: {fatal[0]}", file=sys.stderr)
        return 1
    return 0
