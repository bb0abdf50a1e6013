"""``python -m verifier_client probe``: send identical inputs many times and report how often
the labels flip: evidence of a randomized preprocessing (CSRP, RDG) in front of the model."""

from __future__ import annotations

import argparse

from models.cli_support import Example, add_command, alias, output_file
from verifier_client.cli_options import (
    MAX_PROBE_SAMPLES,
    MAX_PROBE_TRIALS,
    add_client_arguments,
    bounded_int,
    client_kwargs,
    model_name,
    url_value,
    wait_for_server,
)

EXAMPLES = [
    Example("python -m verifier_client probe --url http://127.0.0.1:8000 --model csrp",
            note="with a server running on :8000"),
    Example("python -m verifier_client probe --url http://127.0.0.1:8000 --model copy "
            "--inputs zoo/fingerprints/ipguard.safetensors --trials 100 "
            "--json build/examples/probe.json"),
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "probe", "detect randomized preprocessing by label flips",
                    "Send the same inputs many times and report how often the labels flip: "
                    "evidence of a randomized preprocessing (CSRP, RDG) in front of the model.",
                    EXAMPLES)
    p.add_argument("--url", required=True, type=url_value,
                   help="server root, e.g. http://127.0.0.1:8000")
    p.add_argument("--model", required=True, type=model_name, metavar="NAME",
                   help="model name on the server")
    p.add_argument("--inputs", dest="inputs_file", default=None, metavar="FILE.safetensors",
                   help="images to repeat (a fingerprint set or any safetensors file with an "
                        "'images' tensor); default: seeded random images")
    p.add_argument("--trials", type=bounded_int(2, MAX_PROBE_TRIALS), default=50,
                   help="times each input is sent (default 50)")
    p.add_argument("--samples", type=bounded_int(1, MAX_PROBE_SAMPLES), default=16,
                   metavar="N",
                   help="number of default random inputs (default 16)")
    alias(p, "--count", dest="samples", type=bounded_int(1, MAX_PROBE_SAMPLES))
    p.add_argument("--seed", type=int, default=0, help="seed of the default inputs")
    p.add_argument("--json", dest="json_out", type=output_file, default=None, metavar="FILE",
                   help="write the result here as JSON")
    add_client_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from models.atomic import write_json
    from verifier_client.probe import load_inputs, print_probe, probe

    options = client_kwargs(args)
    wait_for_server(args)
    images = load_inputs(args.inputs_file) if args.inputs_file else None
    result = probe(args.url, args.model, images, trials=args.trials, count=args.samples,
                   seed=args.seed, **options)
    print_probe(result)
    if args.json_out:
        write_json(args.json_out, result)
    return 0

