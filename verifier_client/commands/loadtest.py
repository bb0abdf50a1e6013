"""``python -m verifier_client loadtest``: closed-loop concurrency sweep and open-loop (constant or
Poisson) arrivals against an Open Inference Protocol server; per point throughput, latency
percentiles, errors and the server's per-stage times; with two models, the preprocessing
overhead of the first over the second. Writes loadtest.json, loadtest.md and loadtest.png."""

from __future__ import annotations

import argparse
import shlex
import sys

from models.cli_support import (
    CommaList,
    Example,
    add_command,
    alias,
    output_dir,
    positive_float,
    positive_int,
)
from verifier_client.cli_options import (
    model_name,
    url_value,
)

EXAMPLES = [
    Example("python -m verifier_client loadtest --url http://127.0.0.1:8000 --models csrp,copy "
            "--concurrency 1,8,32,64 --duration 10 --out results/loadtest",
            note="with python -m server --repository zoo --models copy,csrp running"),
    Example("python -m verifier_client loadtest --url http://127.0.0.1:8000 --models csrp "
            "--rate 50,200 --poisson --duration 5 --images-per-request 4"),
]
FOOTER = """Closed loop by default (--concurrency 1,8,32,64); --rate switches to open loop (add
--concurrency to run both). Bounds: 600 s per point, 1024 connections, --max-requests per
point, about 3600 s planned in all. Loopback servers only unless --allow-remote (a load test
is not for servers other people run)."""


def int_list(value: str) -> tuple[int, ...]:
    try:
        numbers = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: "
                                         f"{value!r}") from None
    if not numbers or any(n < 1 for n in numbers):
        raise argparse.ArgumentTypeError(f"need integers >= 1; got {value!r}")
    return numbers


def float_list(value: str) -> tuple[float, ...]:
    try:
        numbers = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: "
                                         f"{value!r}") from None
    if not numbers or any(not n > 0 for n in numbers):
        raise argparse.ArgumentTypeError(f"need numbers > 0; got {value!r}")
    return numbers


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "loadtest", "load-test a server (throughput, latency, stages)",
                    "Closed-loop concurrency sweep and open-loop (constant or Poisson) arrivals "
                    "against an Open Inference Protocol server: per point throughput, latency "
                    "percentiles, errors and the server's per-stage times; with two models, the "
                    "preprocessing overhead of the first over the second.", EXAMPLES, FOOTER)
    p.add_argument("--url", required=True, type=url_value,
                   help="server root, e.g. http://127.0.0.1:8000")
    p.add_argument("--models", action=CommaList, item=model_name, default=None, metavar="A,B",
                   help="one or two models (csrp,copy reports the first's overhead over the "
                        "second's at every point)")
    alias(p, "--model", dest="models", action=CommaList)
    p.add_argument("--concurrency", type=int_list, default=None, metavar="C1,C2,...",
                   help="closed-loop connections per point (default 1,8,32,64 unless --rate)")
    p.add_argument("--rate", type=float_list, default=None, metavar="R1,R2,...",
                   help="open-loop arrival rates in requests/s (constant spacing)")
    p.add_argument("--poisson", action="store_true",
                   help="open loop: Poisson arrivals (exponential gaps, seeded) instead")
    p.add_argument("--duration", type=positive_float, default=10.0, metavar="S",
                   help="seconds per point and model (default 10)")
    p.add_argument("--images-per-request", type=positive_int, default=1, metavar="K",
                   help="images in each request (default 1)")
    p.add_argument("--max-requests", type=positive_int, default=200_000, metavar="M",
                   help="requests sent per point at most (default 200000)")
    p.add_argument("--max-inflight", type=positive_int, default=1024, metavar="N",
                   help="open loop: requests open at once at most; later arrivals are counted "
                        "as not_sent (default 1024)")
    p.add_argument("--timeout", type=positive_float, default=30.0, metavar="S",
                   help="seconds per request before it counts as a timeout (default 30)")
    p.add_argument("--seed", type=int, default=0, help="seed of the images and arrivals")
    p.add_argument("--out", type=output_dir, default="build/loadtest", metavar="DIR",
                   help="folder for loadtest.json, .md and .png (default build/loadtest)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-loopback server (only one you operate)")
    p.add_argument("--quiet", action="store_true", help="no per-point progress lines")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from verifier_client.studies.loadtest import (
        LoadSettings,
        markdown_report,
        run_loadtest,
        write_outputs,
    )

    if not args.models:
        from models.errors import UserError

        raise UserError("give the models to load: --models A or --models A,B")
    concurrency = args.concurrency or (() if args.rate else (1, 8, 32, 64))
    settings = LoadSettings(
        url=args.url.rstrip("/"), models=tuple(args.models), concurrency=concurrency,
        rates=args.rate or (), poisson=args.poisson, duration_s=args.duration,
        images_per_request=args.images_per_request, max_requests=args.max_requests,
        max_inflight=args.max_inflight, timeout_s=args.timeout, seed=args.seed,
        allow_remote=args.allow_remote)
    report = run_loadtest(settings, progress=not args.quiet)
    command = (shlex.join(["python", "-m", "verifier_client", *sys.argv[1:]])
               if sys.argv[1:2] == ["loadtest"] else None)
    paths = write_outputs(report, args.out, command)
    print(markdown_report(report), end="")
    print(f"wrote {paths['json']}, {paths['markdown']}, {paths['plot']}")
    return 0
