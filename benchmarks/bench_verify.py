"""Benchmark: ``verify`` end to end against a local server (the issue's yardstick: 6 methods x
100 fingerprints x 100 repeats).

    python benchmarks/bench_verify.py [--repository zoo] [--model pirate-plain]
        [--fingerprints zoo/fingerprints] [--calibration zoo/calibration.json]
        [--repeats 100] [--batch-size 100] [--concurrency 8] [--rounds 1]
        [--server-arg=--max-batch-size=128 ...] [--json PATH]

Starts ``python -m server`` (its own process) on 127.0.0.1 serving ``--model`` from
``--repository``, then runs ``verifier_client.verification.verify`` in this process, the way
``python -m verifier_client verify`` does, and reports per round:

- wall seconds and queries (fingerprint labels) per second;
- the client's own CPU time (``time.process_time`` of this process) and its fraction of wall:
  what the verifier itself costs, the rest is waiting for the server;
- the server process's CPU time over the same interval (``/proc/<pid>/stat``) for comparison.

Fingerprint sets default to ``zoo/fingerprints/*.safetensors``. Without ``--calibration`` a
placeholder calibration (independent rates 0) is made for the sets: timings do not depend on
it, but the verdicts printed then mean nothing. The client and server share this machine's
cores; compare numbers within one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.atomic import write_json  # noqa: E402
from models.local_server import LocalServer  # noqa: E402
from models.provenance import code_version, utc_now  # noqa: E402
from verifier_client.calibration import (  # noqa: E402
    calibration_entry,
    load_calibration,
)
from verifier_client.fingerprint_set import load_sets  # noqa: E402
from verifier_client.verification import print_report, verify  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its reaped children) from /proc, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def placeholder_calibration(sets: list[Any]) -> dict[str, Any]:
    methods = {}
    for fset in sets:
        entry = calibration_entry(fset.method, [0.0, 0.0], ["none-1", "none-2"],
                                  n_fingerprints=fset.n)
        methods[fset.method] = {"set_file": str(fset.path), "set_sha256": fset.sha256,
                                "n": fset.n, **entry}
    return {"format": "placeholder", "methods": methods}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", type=Path, default=ROOT / "zoo")
    parser.add_argument("--model", default="target")
    parser.add_argument("--fingerprints", nargs="+", default=None)
    parser.add_argument("--calibration", default=None)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--protocol", default="auto", choices=("auto", "binary", "json"))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra flag for python -m server (repeatable), e.g. "
                             "--server-arg=--max-batch-size=128")
    parser.add_argument("--url", default=None, help="use this running server instead")
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args()

    sources = args.fingerprints or sorted(str(p) for p in
                                          (ROOT / "zoo" / "fingerprints").glob("*.safetensors"))
    if not sources:
        raise SystemExit("no fingerprint sets: pass --fingerprints (zoo/fingerprints is empty)")
    sets = load_sets(sources)
    calibration = (load_calibration(args.calibration) if args.calibration
                   else placeholder_calibration(sets))
    server = None if args.url else LocalServer(
        args.repository, "--models", args.model,
        *[a for extra in args.server_arg for a in extra.split("=", 1)], threads=None).start(300)
    url = args.url or server.url
    process = server.process if server else None
    rounds = []
    try:
        for index in range(args.rounds):
            server_cpu0 = cpu_seconds(process.pid) if process else 0.0
            report = verify(url, args.model, sets, calibration, repeats=args.repeats,
                            batch_size=args.batch_size, concurrency=args.concurrency,
                            protocol=args.protocol)
            server_cpu = cpu_seconds(process.pid) - server_cpu0 if process else None
            rounds.append({
                "round": index, "wall_seconds": report["wall_seconds"],
                "queries": report["queries"], "requests": report["requests_sent"],
                "queries_per_second": report["queries_per_second"],
                "client_cpu_seconds": report["client_seconds"],
                "client_cpu_fraction": report["client_cpu_fraction"],
                "server_cpu_seconds": server_cpu,
                "repeats_failed": sum(r["repeats_failed"] for r in report["methods"])})
            if index == 0:
                print_report(report)
    finally:
        if server is not None:
            server.stop(30)
    result = {
        "benchmark": "verify", "time": utc_now(), "code_version": code_version(),
        "cpu_count": os.cpu_count(), "model": args.model, "sets": [s.method for s in sets],
        "n": [s.n for s in sets], "repeats": args.repeats, "batch_size": args.batch_size,
        "concurrency": args.concurrency, "protocol": args.protocol,
        "server_args": args.server_arg, "rounds": rounds}
    for entry in rounds:
        print(f"round {entry['round']}: {entry['queries']} queries in {entry['wall_seconds']:.2f} "
              f"s = {entry['queries_per_second']:.0f} queries/s ({entry['requests']} requests); "
              f"client CPU {entry['client_cpu_seconds']:.2f} s = "
              f"{entry['client_cpu_fraction']:.1%} of wall"
              + (f"; server CPU {entry['server_cpu_seconds']:.2f} s"
                 if entry["server_cpu_seconds"] is not None else ""))
    if args.json_out:
        write_json(args.json_out, result)
    else:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
