"""``python -m verifier_client verify``: query a suspect label-only model with fingerprint sets
and decide, per method, "stolen", "not_proven" or "inconclusive" against a calibration file,
and overall at a family-wise false-accusation rate of at most alpha."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from models.cli_support import (
    CommaList,
    Example,
    add_command,
    alias,
    fraction,
    output_file,
    positive_int,
)
from models.errors import UserError
from verifier_client.cli_options import (
    MAX_REPEATS,
    MAX_VOTES,
    add_client_arguments,
    add_eot_arguments,
    alpha_value,
    bounded_int,
    client_kwargs,
    model_name,
    url_value,
    utc_time,
    wait_for_server,
)

RULES = ("conservative", "max", "fit")
DECIDERS = ("auto", "combined", "parametric", "rank")
COMBINERS = ("mean", "max")
DEFAULT_ALPHA, DEFAULT_MIN_SUCCESS = 0.01, 0.9
EXAMPLES = [
    Example("python -m verifier_client verify --url http://127.0.0.1:8000 --model csrp "
            "--fingerprints zoo/fingerprints --calibration zoo/calibration.json --repeats 20 "
            "--json build/examples/verify-csrp.json", note="with a server running on :8000"),
    Example("python -m verifier_client verify --url http://127.0.0.1:8000 --model csrp "
            "--fingerprints zoo/fingerprints --calibration zoo/calibration.json --repeats 10 "
            "--budget 60000", note="more rounds while a method is inconclusive"),
    Example("python -m verifier_client verify --url http://127.0.0.1:8000 --model csrp-ft "
            "--fingerprints zoo/fingerprints --calibration zoo/calibration.json --adaptive",
            note="probe, then EOT sets and votes"),
]
FOOTER = """Exit status 0 when it ran (whatever the verdict); 3 when too few queries were
answered to give a verdict (the JSON says why); 2 with one line when it could not run."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "verify", "verify a remote label-only model with fingerprints",
                    "Query a suspect label-only model with fingerprint sets and decide, per "
                    "method, stolen / not_proven / inconclusive against a calibration file, and "
                    "overall at a family-wise false-accusation rate of at most --alpha.",
                    EXAMPLES, FOOTER)
    p.add_argument("--url", required=True, type=url_value,
                   help="server root, e.g. http://127.0.0.1:8000")
    p.add_argument("--model", required=True, type=model_name, metavar="NAME",
                   help="model name on the server")
    p.add_argument("--fingerprints", required=True, action=CommaList, metavar="FILE_OR_DIR",
                   help="fingerprint set files, or folders of *.safetensors sets")
    p.add_argument("--calibration", required=True, help="calibration.json made for these sets")
    p.add_argument("--repeats", type=bounded_int(1, MAX_REPEATS), default=100,
                   help="queries of each whole set per round (default 100, as the paper)")
    p.add_argument("--budget", type=positive_int, default=None, metavar="Q",
                   help="sequential: further rounds of --repeats for inconclusive methods until "
                        "all are decided or Q queries (fingerprint images) are spent")
    p.add_argument("--alpha", type=alpha_value, default=DEFAULT_ALPHA,
                   help=f"family-wise false-accusation rate of the overall verdict (default "
                        f"{DEFAULT_ALPHA})")
    p.add_argument("--decide-by", choices=DECIDERS, default="auto",
                   help="what decides: combined (one exact rank test of a statistic over all "
                        "methods; needs 1/alpha - 1 calibration models), parametric (Holm over "
                        "logit-normal nulls), rank (Holm over rank p-values), or auto = "
                        "combined when the calibration has enough models, else parametric "
                        "(default)")
    p.add_argument("--combine", choices=COMBINERS, default="mean",
                   help="the combined statistic: mean (default) or max of the methods' "
                        "standardised logit rates; fixed before looking at the suspect")
    p.add_argument("--min-success", type=fraction, default=DEFAULT_MIN_SUCCESS,
                   help="share of planned repeats that must be answered for a verdict "
                        f"(default {DEFAULT_MIN_SUCCESS})")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap interval")
    p.add_argument("--votes", type=bounded_int(1, MAX_VOTES), default=1, metavar="K",
                   help="ask every fingerprint K times per repeat and score its modal label "
                        "(K x the queries; default 1)")
    adaptive = p.add_argument_group("adaptive verification")
    adaptive.add_argument("--adaptive", action="store_true",
                          help="probe the front first; if it is randomized, verify with the "
                               "EOT sets and their front-matched calibration, with its votes "
                               "and repeats, and say so")
    add_eot_arguments(adaptive, "zoo")
    p.add_argument("--rule", choices=RULES, default=None,
                   help="threshold rule of the legacy threshold verdict column")
    claims = p.add_argument_group("committed claims (verifier_client.commitment)")
    claims.add_argument("--commitments", type=Path, default=None, metavar="REGISTRY",
                        help="require every set used to be committed in this registry "
                        "(python -m verifier_client commit)")
    claims.add_argument("--committed-before", type=utc_time, default=None, metavar="TIME",
                        help="and committed before this UTC time (ISO 8601, e.g. the "
                        "suspect's release: 2026-11-01T00:00:00Z)")
    p.add_argument("--json", dest="json_out", type=output_file, default=None, metavar="FILE",
                   help="write the report (docs/design.md 3.6) here, atomically")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    alias(p, "--no-progress", dest="quiet", action="store_true")
    add_client_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from verifier_client.calibration import load_calibration
    from verifier_client.fingerprint_set import load_sets
    from verifier_client.verification import (
        NO_VERDICT,
        VerifyOptions,
        print_report,
        verify,
        write_report,
    )

    if args.committed_before is not None and args.commitments is None:
        raise UserError("--committed-before needs --commitments")
    options = client_kwargs(args)
    wait_for_server(args)
    sets = load_sets(args.fingerprints)
    calibration = load_calibration(args.calibration)
    votes, repeats, adaptive = args.votes, args.repeats, None
    if args.adaptive:
        from verifier_client.adaptive import Route, check_front_route, choose

        where = str(args.eot_calibration or "zoo/calibration-eot.json")
        front = Route(load_sets([args.eot_fingerprints or "zoo/fingerprints-eot"]),
                      load_calibration(where))
        check_front_route(front, where)
        choice = choose(args.url, args.model, Route(sets, calibration), front, votes, repeats,
                        options)
        sets, calibration, votes, repeats = (choice.sets, choice.calibration, choice.votes,
                                             choice.repeats)
        adaptive = choice.describe()
        print(choice.message, flush=True)
    commitments = None
    if args.commitments is not None:
        from verifier_client.commitment import check_committed

        found = check_committed(list(sets), args.commitments, args.committed_before)
        commitments = [json.loads(c.model_dump_json()) for c in found]
        print(f"committed: {len(found)} set(s) to model {found[0].model} "
              f"(sha256 {found[0].model_sha256[:12]}), the latest "
              f"{max(c.committed for c in found).isoformat()}", flush=True)

    decision = VerifyOptions(alpha=args.alpha, decide_by=args.decide_by,
                             min_success=args.min_success, seed=args.seed, repeats=repeats,
                             budget=args.budget, rule=args.rule, votes=votes,
                             combine=args.combine)
    report = verify(args.url, args.model, sets, calibration, options=decision,
                    show_progress=not args.quiet, **options)
    if adaptive is not None:
        report["adaptive"] = adaptive
    if commitments is not None:
        report["commitments"] = commitments
    print_report(report)
    if args.json_out:
        write_report(args.json_out, report)
    return 3 if report["overall"]["verdict"] == NO_VERDICT else 0
