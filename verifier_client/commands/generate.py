"""``python -m verifier_client generate``: a fingerprint set for a target model."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from models.cli_support import (
    CommaList,
    Example,
    add_command,
    alias,
    existing_entry,
    output_file,
    positive_int,
)
from models.errors import UserError

METHODS = ("akh", "cae", "di", "ipguard", "rce", "rce-gm", "rce-lt", "sac-m", "transfer", "vce")
#: AKH, SAC-m and DI draw from the owner's half of the test split; the other half is the
#: pirate's (``models.zoo.plan.PIRATE_TEST_ROWS``).
OWNER_SEED_SAMPLES = 5000
EXAMPLES = [
    Example("python -m verifier_client generate --method vce --target zoo/target --n 5 "
            "--seed 3 --param steps=10 --out build/examples/vce-5.safetensors", cheap=True),
    Example("python -m verifier_client generate --method ipguard --target zoo/target --n 100 "
            "--seed 1 --out build/examples/ipguard.safetensors", note="the zoo's set"),
    Example("python -m verifier_client generate --method cae --target zoo/target --n 100 "
            "--seed 2 --pools build/pools/surrogates/pools.json --param eps=0.05 "
            "--param tau=0.5 --out build/examples/cae.safetensors"),
    Example("python -m verifier_client generate --method vce --target zoo/target --n 100 "
            "--seed 13 --eot 'csrp(sigma=1.1..1.35, p=1..8)' --eot-draws 20 "
            "--out build/examples/vce-eot.safetensors", note="robust to a randomized front"),
    Example("python -m verifier_client generate --method akh --target zoo/target --n 100 "
            "--seed 7 --out build/examples/akh.safetensors", cheap=True,
            note="the target's mistakes on the owner's test images"),
    Example("python -m verifier_client generate --method di --target zoo/target --n 100 "
            "--seed 9 --out build/examples/di.safetensors", cheap=True,
            note="50 private training points, 50 public ones, and a Blind Walk"),
    Example("python -m verifier_client generate --list-methods", cheap=True),
]


def param_value(text: str) -> tuple[str, Any]:
    """``key=value``; the value is read as JSON (numbers, true/false, null) or kept as text."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip().replace("-", "_"), value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "generate", "generate a fingerprint set for a target model",
                    "Generate N fingerprint samples that the target labels as recorded, after "
                    f"8-bit quantisation (methods: {', '.join(METHODS)}; "
                    "--list-methods prints each one's parameters and defaults).", EXAMPLES)
    p.add_argument("--list-methods", action="store_true",
                   help="print every registered method with its parameters and exit")
    p.add_argument("--method", metavar="METHOD", help=f"one of {', '.join(METHODS)}")
    p.add_argument("--target", type=existing_entry, metavar="REPO/NAME",
                   help="the owner's model (white-box: needs model.safetensors)")
    p.add_argument("--n", type=positive_int, default=100, help="number of samples (default 100)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", type=output_file, help="fingerprint set file to write")
    p.add_argument("--param", action="append", type=param_value, default=[], metavar="KEY=VALUE",
                   help="method parameter (repeatable), e.g. --param k=5")
    p.add_argument("--surrogates", action=CommaList, item=existing_entry, default=None,
                   metavar="REPO/A,REPO/B", help="CAE surrogate models (comma-separated)")
    p.add_argument("--references", action=CommaList, item=existing_entry, default=None,
                   metavar="REPO/C,REPO/D", help="CAE reference models (comma-separated)")
    p.add_argument("--pools", type=Path, default=None, metavar="POOLS_JSON",
                   help="CAE pools file written by `pools` (instead of the two lists)")
    p.add_argument("--seed-split", choices=("test", "train"), default="test",
                   help="split the clean seeds of IPGuard/CAE come from (default test)")
    p.add_argument("--seed-samples", type=positive_int, default=None, metavar="K",
                   help="use only the first K images of the split as seeds (akh, sac-m, di: "
                        f"{OWNER_SEED_SAMPLES}, the owner's half of the test split)")
    alias(p, "--seed-count", dest="seed_samples", type=positive_int)
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="folder holding the dataset")
    p.add_argument("--eot", default=None, metavar="FAMILY",
                   help="Expectation over Transformation against a randomized front, e.g. "
                        "'csrp(sigma=1.1..1.3, p=2..8)' (ranges with .., members joined by +)")
    p.add_argument("--eot-draws", type=int, default=None, metavar="K",
                   help="family draws per optimisation step (default 20)")
    p.add_argument("--eot-accept", type=float, default=None, metavar="SHARE",
                   help="share of fresh draws under which a sample's label must hold "
                        "(default 0.9)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.set_defaults(run=run)


def list_methods_text() -> str:
    from verifier_client.fingerprints import list_methods, method_parameters

    return "\n".join(f"{name}: " + ", ".join(f"{k}={v}" for k, v in
                                              method_parameters(name).items())
                     for name in list_methods())


def run(args: argparse.Namespace) -> int:
    if args.list_methods:
        print(list_methods_text())
        return 0
    missing = [flag for flag, value in (("--method", args.method), ("--target", args.target),
                                        ("--out", args.out)) if value is None]
    if missing:
        raise UserError(f"{', '.join(missing)} required (or --list-methods)")
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from models.datasets import load_dataset
    from models.entries import set_threads
    from models.repository import load_model
    from verifier_client.fingerprint_set import target_metadata
    from verifier_client.fingerprints import SeedPool, create_method, get_method_class
    from verifier_client.pools import load_pools, pool_paths

    set_threads(args.threads)
    cls = get_method_class(args.method)
    params = dict(args.param)
    for key in ("eot", "eot_draws", "eot_accept"):
        if getattr(args, key) is not None:
            if key in params:
                raise UserError(f"--{key.replace('_', '-')} given twice (also as --param)")
            params[key] = getattr(args, key)
    if args.eot is None and ("eot_draws" in params or "eot_accept" in params):
        raise UserError("--eot-draws and --eot-accept need --eot FAMILY")
    method = create_method(args.method, **params)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device available")
    model, config = load_model(args.target, args.device)
    pools = None
    if args.pools is not None or args.surrogates or args.references:
        if not cls.uses_pools:
            raise UserError(f"{args.method} does not use model pools; drop --pools/--surrogates/"
                            "--references")
        if args.pools is not None:
            if args.surrogates or args.references:
                raise UserError("give --pools or --surrogates/--references, not both")
            surrogates, references = pool_paths(args.pools)
        else:
            surrogates, references = args.surrogates or [], args.references or []
        pools = load_pools(surrogates, references, args.device)
        if args.pools is not None:
            pools.description["pools_file"] = str(args.pools)
    elif cls.uses_pools:
        raise UserError(f"{args.method} needs model pools: --pools FILE or --surrogates ... "
                        "--references ... (build them with `python -m verifier_client pools`)")
    seeds, extra = None, {}
    if cls.uses_seeds:
        data = load_dataset(config.dataset, args.seed_split, args.data_root)
        owner_half = args.method in ("akh", "sac-m", "di")
        count = args.seed_samples or (OWNER_SEED_SAMPLES if owner_half else None)
        if count:
            data = data.take(count)
        seeds = SeedPool.from_any(data)
    if args.method == "di":
        from models.zoo.steps import owner_private_split

        private = owner_private_split(load_dataset(config.dataset, "train", args.data_root))[0]
        extra["private"] = SeedPool.from_any(private)
    if args.out.is_dir():
        raise UserError(f"--out {args.out} is a folder; give a file name")

    started = time.perf_counter()
    from rich.console import Console

    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console,
                  transient=True, disable=args.quiet or not console.is_terminal) as bar:
        task = bar.add_task(f"{args.method} on {config.name}", total=args.n, status="")

        def progress(event: Any) -> None:
            step = f" step {event.step}/{event.steps}" if event.steps else ""
            bar.update(task, completed=event.accepted,
                       status=f"round {event.round}{step}, {event.tried} tried")

        fset = method.generate(model, args.n, generator=torch.Generator().manual_seed(args.seed),
                               seeds=seeds, pools=pools, progress=progress,
                               target=target_metadata(args.target, config),
                               input_shape=config.input_shape, **extra)
    seconds = time.perf_counter() - started
    fset.save(args.out)
    meta = fset.metadata
    print(f"{args.method}: {len(fset)} samples, {meta['candidates_tried']} candidates tried "
          f"({meta['acceptance_rate']:.0%} accepted, {meta['rounds']} rounds) in {seconds:.1f} s")
    print(f"wrote {args.out}")
    return 0
