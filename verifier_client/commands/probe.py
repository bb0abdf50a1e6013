"""``python -m verifier_client probe``: send identical inputs many times and report how often
the labels flip: evidence of a randomized preprocessing (CSRP, RDG) in front of the model."""

from __future__ import annotations

import argparse

from models.atomic import write_json
from models.cli_support import output_file, positive_int
from verifier_client.commands.verify import add_client_arguments, client_kwargs
from verifier_client.probe import load_inputs, print_probe, probe

EXAMPLES = """examples:
  python -m verifier_client probe --url http://127.0.0.1:8000 --model pirate-csrp
  python -m verifier_client probe --url http://127.0.0.1:8000 --model pirate-plain \\
      --inputs zoo/fingerprints/ipguard.safetensors --trials 100 --json probe.json"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("probe", help="detect randomized preprocessing by label flips",
                              description=__doc__, epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="server root, e.g. http://127.0.0.1:8000")
    p.add_argument("--model", required=True, help="model name on the server")
    p.add_argument("--inputs", default=None, metavar="FILE.safetensors",
                   help="images to repeat (a fingerprint set or any safetensors file with an "
                        "'images' tensor); default: seeded random images")
    p.add_argument("--trials", type=positive_int, default=50,
                   help="times each input is sent (default 50)")
    p.add_argument("--count", type=positive_int, default=16,
                   help="number of default random inputs (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the default inputs")
    p.add_argument("--json", dest="json_out", type=output_file, default=None, metavar="FILE",
                   help="write the result here as JSON")
    add_client_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    options = client_kwargs(args)
    images = load_inputs(args.inputs) if args.inputs else None
    result = probe(args.url, args.model, images, trials=args.trials, count=args.count,
                   seed=args.seed, **options)
    print_probe(result)
    if args.json_out:
        write_json(args.json_out, result)
    return 0

