"""Benchmark: fingerprint generation per method on a target, and each set's matching rate on the
target, a pruned copy and independent models.

    python benchmarks/bench_fingerprints.py --pools zoo/pools/pools.json [--n 100] \\
        [--target zoo/target] [--pruned REPO/NAME] [--independent zoo/indep-01 zoo/indep-02] \\
        [--method vce --method cae] [--param cae:eps=0.05 --param cae:tau=0.5] \\
        [--out-dir sets/] [--json bench.json] [--threads 1] [--device cuda]

* Generation: ``create_method(m, **params).generate(target, n, seed)`` timed wall-clock (and
  process CPU time), with the number of candidates tried and rounds. IPGuard and CAE draw seeds
  from the test split; CAE needs ``--pools`` (``python -m verifier_client pools``) and is skipped
  without it.
* Matching rate (no transform, one batch of all N): on the target itself, on a pruned copy
  (``--pruned``; by default the target pruned in memory with global L1 at ``--prune-rate`` 0.5,
  the ``models.modify.prune_model`` the zoo's pirate uses) and on each ``--independent`` model.

Timings on a shared 2-core machine swing between runs (the load average before and after is
printed and recorded): compare only within one run.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.atomic import write_json
from models.datasets import load_dataset
from models.modify import prune_model
from models.repository import load_model
from verifier_client.fingerprint_set import target_metadata
from verifier_client.fingerprints import (
    SeedPool,
    create_method,
    get_method_class,
    list_methods,
)
from verifier_client.matching import matching_rates
from verifier_client.pools import load_pools, pool_paths

ORDER = ["ipguard", "cae", "vce", "rce", "rce-gm", "rce-lt"]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def parse_params(items: list[str]) -> dict[str, dict[str, Any]]:
    """``method:key=value`` -> {method: {key: value}} (values read as JSON when they parse)."""
    params: dict[str, dict[str, Any]] = {}
    for item in items:
        method, _, assignment = item.partition(":")
        key, sep, raw = assignment.partition("=")
        if not sep or not key or method not in list_methods():
            raise SystemExit(f"--param {item!r}: expected METHOD:KEY=VALUE with a known method")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        params.setdefault(method, {})[key] = value
    return params


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path, default=Path("zoo/target"))
    parser.add_argument("--pruned", type=Path, default=None,
                        help="pruned copy entry (default: the target pruned in memory)")
    parser.add_argument("--prune-rate", type=float, default=0.5)
    parser.add_argument("--independent", type=Path, nargs="*",
                        default=[Path("zoo/indep-01"), Path("zoo/indep-02")])
    parser.add_argument("--pools", type=Path, default=None, help="CAE pools.json")
    parser.add_argument("--method", action="append", default=None, choices=list_methods())
    parser.add_argument("--param", action="append", default=[], metavar="METHOD:KEY=VALUE")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=None, help="save the sets here")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.target / "config.json").is_file():
        raise SystemExit(f"{args.target}: no target entry yet (train it, or pass --target)")
    methods = args.method or ORDER
    overrides = parse_params(args.param)
    device = torch.device(args.device)
    target, config = load_model(args.target, device)
    if args.pruned is not None:
        pruned, _ = load_model(args.pruned, device)
        pruned_name = args.pruned.name
    else:
        pruned = copy.deepcopy(target)
        prune_model(pruned, args.prune_rate)
        pruned_name = f"prune-{args.prune_rate:g} (in memory)"
    independents = [(p.name, load_model(p, device)[0]) for p in args.independent]
    seeds = SeedPool.from_any(load_dataset(config.dataset, "test"))
    pools = load_pools(*pool_paths(args.pools), device) if args.pools else None
    load_before = os.getloadavg()
    print(f"target {args.target} ({config.arch}, {config.dataset}), n={args.n}, device={device}, "
          f"torch threads={torch.get_num_threads()}, load average {load_before[0]:.1f}",
          flush=True)

    rows: list[dict[str, Any]] = []
    for name in methods:
        cls = get_method_class(name)
        if cls.uses_pools and pools is None:
            print(f"{name}: skipped (needs --pools)", flush=True)
            continue
        method = create_method(name, **overrides.get(name, {}))
        kwargs: dict[str, Any] = {}
        if cls.uses_seeds:
            kwargs["seeds"] = seeds
        if cls.uses_pools:
            kwargs["pools"] = pools
        wall, cpu = time.perf_counter(), cpu_seconds()
        fset = method.generate(target, args.n, generator=torch.Generator().manual_seed(args.seed),
                               target=target_metadata(args.target, config),
                               input_shape=config.input_shape, **kwargs)
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        if args.out_dir is not None:
            fset.save(args.out_dir / f"{name}.safetensors")
        rates = {"target": matching_rates(target, fset).mean,
                 pruned_name: matching_rates(pruned, fset).mean}
        for indep_name, model in independents:
            rates[indep_name] = matching_rates(model, fset).mean
        row = {"method": name, "params": overrides.get(name, {}), "n": len(fset),
               "candidates_tried": fset.metadata["candidates_tried"],
               "rounds": fset.metadata["rounds"], "converged": fset.metadata.get("converged"),
               "seconds": round(wall, 1), "cpu_seconds": round(cpu, 1), "rates": rates}
        rows.append(row)
        print(f"{name}: {row['seconds']} s, {row['candidates_tried']} tried, "
              f"MR {json.dumps(rates)}", flush=True)
    load_after = os.getloadavg()

    columns = ["target", pruned_name, *[n for n, _ in independents]]
    print(f"\nload average before {load_before[0]:.1f}, after {load_after[0]:.1f}\n")
    print("| method | non-default params | N | tried | gen time (s) | CPU (s) | "
          + " | ".join(f"MR {c}" for c in columns) + " |")
    print("|---|---|---|---|---|---|" + "---|" * len(columns))
    for row in rows:
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items()) or "-"
        print(f"| {row['method']} | {params} | {row['n']} | {row['candidates_tried']} | "
              f"{row['seconds']} | {row['cpu_seconds']} | "
              + " | ".join(f"{row['rates'][c]:.2f}" for c in columns) + " |")
    if args.json is not None:
        write_json(args.json, {"target": str(args.target), "device": str(device),
                               "threads": torch.get_num_threads(), "n": args.n,
                               "seed": args.seed, "load_average": [load_before, load_after],
                               "pruned": pruned_name, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
