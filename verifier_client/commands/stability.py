"""``python -m verifier_client stability``: RDG vs CSRP matching-rate spread at equal accuracy
(the seed paper's Table 5 question)."""

from __future__ import annotations

import argparse
from pathlib import Path

from models.cli_support import (
    Example,
    add_command,
    alias,
    existing_entry,
    output_dir,
    positive_int,
    transform_spec,
)
from models.errors import UserError

DRAW_MODES = ("per-sample", "shared")
DEFAULT_REPEATS, DEFAULT_SAMPLES, DEFAULT_ACC_REPEATS = 100, 2000, 3
EXAMPLES = [
    Example("python -m verifier_client stability --repository zoo --distort-limit 0.25 "
            "--draws per-sample --repeats 3 --samples 300 --acc-repeats 1 "
            "--out build/examples/stability", cheap=True),
    Example("python -m verifier_client stability --repository zoo --out results/stability",
            note="the README's table, ~2 min"),
    Example("python -m verifier_client stability --repository zoo "
            "--entries csrp-ft,rdg-ft-matched --out results/stability-adapted"),
]
FOOTER = """Without --sigma/--p the CSRP setting is the zoo's csrp entry's; without
--distort-limit RDG's is searched so that its top-1 matches CSRP's. Needs the zoo's test set
(see --data-root)."""


def draw_modes(value: str) -> tuple[str, ...]:
    modes = tuple(part.strip() for part in value.split(",") if part.strip())
    if not modes or any(m not in DRAW_MODES for m in modes):
        raise argparse.ArgumentTypeError(f"draw modes are a comma-separated subset of "
                                         f"{','.join(DRAW_MODES)}, got {value!r}")
    return tuple(dict.fromkeys(modes))


def entry_list(value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    if not names:
        raise argparse.ArgumentTypeError(f"a comma-separated list of zoo entries, got {value!r}")
    return names


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers, "stability",
        "RDG vs CSRP: matching-rate [min, max] over tests at equal accuracy",
        "The paper's Table 5: the target behind CSRP and behind RDG tuned to the same top-1, "
        "each fingerprint set tested --repeats times; [min, max], std against the binomial std, "
        "and the share of tests above the independent maximum, with per-sample and shared (one "
        "per test) draws. Writes JSON, Markdown, CSV and a plot.", EXAMPLES, FOOTER)
    p.add_argument("--repository", type=Path, default=Path("zoo"), metavar="DIR",
                   help="the zoo (default zoo)")
    alias(p, "--zoo", dest="repository", type=Path)
    p.add_argument("--model", type=existing_entry, default=None, metavar="REPO/NAME",
                   help="entry of the repository to put behind the transforms (default "
                        "REPOSITORY/target)")
    p.add_argument("--sigma", type=float, default=None, help="CSRP scale limit (with --p)")
    p.add_argument("--p", type=int, default=None, help="CSRP zero padding (with --sigma)")
    p.add_argument("--distort-limit", type=float, default=None,
                   help="RDG distortion limit in [0, 1) (default: matched to CSRP's top-1)")
    p.add_argument("--num-cells", type=positive_int, default=10,
                   help="RDG cells per axis (default %(default)s, the authors' setting)")
    p.add_argument("--entries", type=entry_list, default=None, metavar="A,B",
                   help="compare these zoo entries, each behind its own preprocessing (e.g. "
                        "csrp-ft,rdg-ft-matched), instead of --model behind CSRP and RDG")
    p.add_argument("--repeats", type=positive_int, default=DEFAULT_REPEATS,
                   help=f"tests of every set per row (default {DEFAULT_REPEATS}, the paper's)")
    p.add_argument("--samples", type=positive_int, default=DEFAULT_SAMPLES, metavar="N",
                   help=f"first N test images for the accuracy match (default {DEFAULT_SAMPLES})")
    p.add_argument("--acc-repeats", type=positive_int, default=DEFAULT_ACC_REPEATS,
                   help=f"transform draws per reported accuracy (default {DEFAULT_ACC_REPEATS})")
    p.add_argument("--draws", type=draw_modes, default=DRAW_MODES,
                   help="per-sample, shared or both (default per-sample,shared)")
    p.add_argument("--seed", type=int, default=0, help="seed of every draw")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--data-root", default=None, help="folder holding the zoo's dataset")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument("--out", type=output_dir, default=Path("build/stability"),
                   help="output folder (default build/stability)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from models.entries import set_threads
    from verifier_client.studies.stability import stability_study, to_markdown, write_outputs

    if args.entries and any(v is not None for v in (args.sigma, args.p, args.distort_limit)):
        raise UserError("--entries compares entries behind their own preprocessing; "
                        "--sigma/--p/--distort-limit do not apply")
    csrp = None
    if args.sigma is not None or args.p is not None:
        csrp = transform_spec("csrp", sigma=args.sigma, p=args.p)
    set_threads(args.threads)
    model = args.model or args.repository / "target"
    if model.parent.resolve() != args.repository.resolve():
        raise UserError(f"--model {model} is not an entry of --repository {args.repository}")
    report = stability_study(args.repository, model=model.name, csrp_spec=csrp,
                             distort_limit=args.distort_limit, num_cells=args.num_cells,
                             entries=args.entries,
                             repeats=args.repeats, samples=args.samples,
                             acc_repeats=args.acc_repeats, modes=args.draws, seed=args.seed,
                             data_root=args.data_root, progress=not args.quiet)
    write_outputs(report, args.out)
    print(to_markdown(report))
    print(f"{report['seconds']} s; wrote {args.out}/stability.{{json,md,csv,png}}")
    return 0
