"""Server memory per JSON request: a 32.5 MB JSON body (2048 FP32 images) against the default
4 MiB JSON limit (413 before parsing) and with the limit lifted (parsed and inferred).

    python benchmarks/bench_json_memory.py [--repository zoo] [--model copy]

Prints the server process's RSS before, its peak (VmHWM) and after, from /proc (Linux only).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.local_server import LocalServer

IMAGES = 2048


def status_mb(pid: int, field: str) -> float:
    """``VmRSS`` / ``VmHWM`` of a process in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", default="zoo")
    parser.add_argument("--model", default="copy")
    args = parser.parse_args()
    data = np.random.default_rng(1).random(IMAGES * 784).astype(np.float32).tolist()
    body = json.dumps({"inputs": [{"name": "input", "shape": [IMAGES, 1, 28, 28],
                                   "datatype": "FP32", "data": data}]}).encode()
    print(f"JSON body: {len(body) / 1e6:.1f} MB ({IMAGES} FP32 images)")
    lifted = ["--max-json-body-mb", "64", "--max-body-mb", "64", "--max-batch-size", str(IMAGES)]
    for flags in ([], lifted):
        with LocalServer(args.repository, "--models", args.model, *flags) as server:
            assert server.process is not None
            pid = server.process.pid
            time.sleep(1)
            before = status_mb(pid, "VmRSS")
            start = time.perf_counter()
            reply = httpx.post(f"{server.url}/v2/models/{args.model}/infer", content=body,
                               headers={"Content-Type": "application/json"}, timeout=120)
            took = time.perf_counter() - start
            time.sleep(0.5)
            print(f"{' '.join(flags) or 'defaults (JSON limit 4 MiB)'}: status "
                  f"{reply.status_code} in {took:.2f} s; RSS before {before:.0f} MB, peak "
                  f"{status_mb(pid, 'VmHWM'):.0f} MB, after {status_mb(pid, 'VmRSS'):.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
