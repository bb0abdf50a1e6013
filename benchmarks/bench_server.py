"""Benchmark: the label-only server against the in-process backend, in one run.

    python benchmarks/bench_server.py [--repository zoo] [--model target] [--duration 10]
                                      [--backends onnx,torch] [--json PATH]

For each backend (ONNX Runtime CPU/CUDA provider, torch eager):

1. in-process: ``models.runtime`` predictor on batches of 32 (``--batch``), images/s, with and
   without CSRP (``models.transforms.csrp`` before the predictor);
2. server: ``python -m server`` in its own process on 127.0.0.1 over a scratch repository holding
   two entries with the model's weights, ``plain`` (no preprocessing) and ``csrp``
   (``{"name": "csrp", "sigma": 1.16, "p": 3}``); an ``httpx.AsyncClient`` load generator in this
   process runs ``--concurrency`` (32) clients back to back for ``--duration`` seconds each
   (after a 2 s warm-up), binary tensor extension (UINT8 NHWC in, INT64 labels out), sending
   1 image per request and 16 images per request, to ``plain`` and to ``csrp``.

The table gives images/s, latency percentiles, the ratio to the in-process batch-32 throughput of
the same backend, and the goals: 16-image requests >= 80% of in-process, single-image requests
>= 40%, CSRP costs < 5% of throughput. The server and the load generator share this machine's
cores (2 here, with whatever else runs): the load generator's own CPU time is taken from the
server, so server ratios are lower bounds. Compare numbers within one run only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.local_server import LocalServer
from models.repository import CONFIG_FILE, load_config
from models.transforms import csrp
from server.pipeline.backends import load_backend

CSRP_SPEC = {"name": "csrp", "sigma": 1.16, "p": 3}
GOALS = {16: 0.80, 1: 0.40}


def scratch_repository(source: Path, out: Path) -> Path:
    """``out/plain`` and ``out/csrp``: copies of ``source`` differing only in preprocessing."""
    for name, spec in (("plain", None), ("csrp", CSRP_SPEC)):
        shutil.copytree(source, out / name)
        config = load_config(out / name).model_copy(update={"name": name, "preprocessing": spec})
        (out / name / CONFIG_FILE).write_text(config.model_dump_json(indent=2))
    return out


class InProcess:
    """The server's own backend class (same session options), called directly on batches."""

    def __init__(self, entry: Path, backend: str, batch: int, threads: int | None) -> None:
        config = load_config(entry)
        if threads:
            torch.set_num_threads(threads)
        self.backend = load_backend(entry, config, backend, torch.device("cpu"), threads)
        c, h, w = config.input_shape
        self.images = torch.rand(batch, c, h, w, generator=torch.Generator().manual_seed(0))
        self.generator = torch.Generator().manual_seed(0)
        for with_csrp in (False, True, False):
            self.step(with_csrp)

    def step(self, with_csrp: bool) -> None:
        x = self.images
        if with_csrp:
            x = csrp(x, CSRP_SPEC["sigma"], CSRP_SPEC["p"], generator=self.generator)
        self.backend.labels(x)

    def csrp_share(self, calls: int = 30) -> float:
        """Median CSRP time / median backend time on the batch, interleaved calls."""
        transform, model = [], []
        for _ in range(calls):
            start = time.perf_counter()
            x = csrp(self.images, CSRP_SPEC["sigma"], CSRP_SPEC["p"], generator=self.generator)
            middle = time.perf_counter()
            self.backend.labels(x)
            transform.append(middle - start)
            model.append(time.perf_counter() - middle)
        return statistics.median(transform) / statistics.median(model)

    def rate(self, with_csrp: bool, duration: float) -> float:
        """Images/s over ``duration`` seconds."""
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < duration:
            self.step(with_csrp)
            done += len(self.images)
        return done / (time.perf_counter() - start)


def start_server(repo: Path, backend: str, args: argparse.Namespace) -> LocalServer:
    return LocalServer(repo, "--backend", backend, "--device", args.device, "--seed", "0",
                       "--max-batch-size", str(args.max_batch_size),
                       "--max-queue-delay-ms", str(args.max_queue_delay_ms),
                       threads=args.threads or None, quiet=False).start(120)


def binary_body(images: np.ndarray) -> tuple[bytes, dict[str, str]]:
    raw = images.tobytes()
    head = json.dumps({
        "inputs": [{"name": "images", "shape": list(images.shape), "datatype": "UINT8",
                    "parameters": {"binary_data_size": len(raw)}}],
        "outputs": [{"name": "label", "parameters": {"binary_data": True}}]}).encode()
    return head + raw, {"Inference-Header-Content-Length": str(len(head)),
                        "Content-Type": "application/octet-stream"}


async def load(url: str, model: str, per_request: int, concurrency: int, duration: float,
               warmup: float, shape: tuple[int, int, int], client: str = "httpx"
               ) -> dict[str, Any]:
    """``concurrency`` clients posting back to back; images/s and latency percentiles.

    ``client="httpx"``: one ``httpx.AsyncClient`` with a pool of ``concurrency`` connections.
    ``client="raw"``: hand-written HTTP/1.1 keep-alive requests over asyncio streams (a few
    microseconds of client CPU per request instead of milliseconds; what perf_analyzer-like
    C++ load generators cost), so more of the shared cores go to the server.
    """
    rng = np.random.default_rng(0)
    h, w, c = shape
    bodies = [binary_body(rng.integers(0, 256, (per_request, h, w, c), dtype=np.uint8))
              for _ in range(concurrency)]
    path = f"/v2/models/{model}/infer"
    latencies: list[float] = []
    counted = {"images": 0, "errors": 0}
    measuring = asyncio.Event()
    stop = asyncio.Event()

    def record(status: int, elapsed: float) -> None:
        if not measuring.is_set() or stop.is_set():
            return
        if status == 200:
            counted["images"] += per_request
            latencies.append(elapsed)
        else:
            counted["errors"] += 1

    async def httpx_loop(session: httpx.AsyncClient, k: int) -> None:
        body, headers = bodies[k]
        while not stop.is_set():
            start = time.perf_counter()
            response = await session.post(path, content=body, headers=headers)
            record(response.status_code, time.perf_counter() - start)

    host, port = url.removeprefix("http://").rsplit(":", 1)

    async def raw_loop(k: int) -> None:
        body, headers = bodies[k]
        request = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
                   + "".join(f"{key}: {value}\r\n" for key, value in headers.items())
                   + "\r\n").encode() + body
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while not stop.is_set():
                start = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
                await reader.readexactly(length)
                record(int(head[9:12]), time.perf_counter() - start)
        finally:
            writer.close()

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as session:
        tasks = [asyncio.create_task(httpx_loop(session, k) if client == "httpx" else raw_loop(k))
                 for k in range(concurrency)]
        await asyncio.sleep(warmup)
        measuring.set()
        start = time.perf_counter()
        await asyncio.sleep(duration)
        stop.set()
        elapsed = time.perf_counter() - start
        await asyncio.gather(*tasks)
    ms = sorted(x * 1000 for x in latencies) or [float("nan")]

    def pct(q: float) -> float:
        return ms[min(len(ms) - 1, int(q * len(ms)))]

    return {"images_per_s": counted["images"] / elapsed, "requests": len(latencies),
            "errors": counted["errors"], "p50_ms": pct(0.50), "p90_ms": pct(0.90),
            "p99_ms": pct(0.99), "mean_ms": statistics.fmean(ms)}


SCRAPED = ("inference_count_total", "inference_batch_count_total",
           "inference_preprocess_duration_seconds_sum", "inference_compute_duration_seconds_sum")


def scrape(url: str, model: str) -> dict[str, float]:
    """Images, batches and the per-stage seconds executed so far for ``model`` (/metrics)."""
    values = dict.fromkeys(SCRAPED, 0.0)
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        name = line.split("{", 1)[0]
        if name in values and f'model="{model}"' in line:
            values[name] = float(line.rsplit(" ", 1)[1])
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", default="zoo", type=Path)
    parser.add_argument("--model", default="target")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds measured per configuration (split over the rounds)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved rounds; the median round rate is reported")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--batch", type=int, default=32, help="in-process batch size")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--backends", default="onnx,torch")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads, in-process and server alike (0: library default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-queue-delay-ms", type=float, default=2.0)
    parser.add_argument("--client", choices=("httpx", "raw"), default="httpx",
                        help="load generator: httpx.AsyncClient, or raw asyncio HTTP/1.1")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    source = args.repository / args.model
    if not (source / CONFIG_FILE).is_file():
        print(f"error: {source}: not a repository entry", file=sys.stderr)
        return 2
    c, h, w = load_config(source).input_shape
    threads = args.threads or None
    results: dict[str, Any] = {"model": str(source), "cpu_count": os.cpu_count(),
                               "threads": threads, "load_before": os.getloadavg(),
                               "backends": {}}
    slice_s = args.duration / args.rounds
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        repo = scratch_repository(source, Path(tmp))
        for backend in args.backends.split(","):
            local = InProcess(repo / "plain", backend, args.batch, threads)
            server = start_server(repo, backend, args)
            url = server.url
            rates: dict[str, list[float]] = {}
            served: dict[str, list[dict[str, Any]]] = {}
            configs = ["in_process", "in_process_csrp"] + [
                f"server_{model}_{n}" for model in ("plain", "csrp") for n in (1, 16)]
            try:
                for round_ in range(args.rounds):
                    order = configs[round_ % len(configs):] + configs[:round_ % len(configs)]
                    for key in order:
                        if key.startswith("in_process"):
                            rate = local.rate(key.endswith("csrp"), slice_s)
                        else:
                            _, model, n = key.split("_")
                            before = scrape(url, model)
                            warmup = args.warmup if key not in served else 0.5
                            stats = asyncio.run(load(url, model, int(n), args.concurrency,
                                                     slice_s, warmup, (h, w, c),
                                                     args.client))
                            after = scrape(url, model)
                            delta = {k: after[k] - before[k] for k in SCRAPED}
                            stats.update(delta)
                            batches = delta["inference_batch_count_total"]
                            stats["mean_batch"] = delta["inference_count_total"] / batches \
                                if batches else 0.0
                            served.setdefault(key, []).append(stats)
                            rate = stats["images_per_s"]
                        rates.setdefault(key, []).append(rate)
                    print(f"[{backend}] round {round_ + 1}/{args.rounds}: " + ", ".join(
                        f"{k} {v[-1]:.0f}" for k, v in rates.items()), flush=True)
            finally:
                server.stop(30)
            row: dict[str, Any] = {k: statistics.median(v) for k, v in rates.items()
                                   if k.startswith("in_process")}
            for key, runs in served.items():
                row[key] = {"images_per_s": statistics.median(rates[key]),
                            "rounds": [r["images_per_s"] for r in runs],
                            "errors": sum(r["errors"] for r in runs),
                            **{k: sum(r[k] for r in runs) for k in SCRAPED},
                            **{q: statistics.median(r[q] for r in runs)
                               for q in ("p50_ms", "p90_ms", "p99_ms", "mean_batch")}}
            row["in_process_rounds"] = rates["in_process"]
            row["in_process_csrp_share"] = local.csrp_share()
            results["backends"][backend] = row
    results["load_after"] = os.getloadavg()
    print()
    print(render(results, args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def stage_cost(plain: dict[str, float], with_csrp: dict[str, float]) -> float:
    """Extra preprocess seconds per image with CSRP, relative to the plain model's
    preprocess + compute seconds per image (the server's own histograms: robust to the load
    swings that make throughput ratios noisy on a shared machine)."""
    def per_image(stats: dict[str, float], key: str) -> float:
        return stats[key] / max(stats["inference_count_total"], 1.0)

    pre, comp = ("inference_preprocess_duration_seconds_sum",
                 "inference_compute_duration_seconds_sum")
    extra = per_image(with_csrp, pre) - per_image(plain, pre)
    return extra / (per_image(plain, pre) + per_image(plain, comp))


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [f"Model {results['model']}, {results['cpu_count']} cores shared by the server and "
             f"the load generator (load average {results['load_before'][0]:.1f} before, "
             f"{results['load_after'][0]:.1f} after); intra-op threads "
             f"{results['threads'] or 'default'}; {args.concurrency} {args.client} clients; "
             f"max queue delay {args.max_queue_delay_ms:g} ms; {args.duration:g} s "
             f"per row in {args.rounds} interleaved rounds, median round shown.", "",
             "| backend | configuration | images/s | vs in-process | goal | p50 ms | p99 ms "
             "| mean batch |",
             "|---|---|---:|---:|---|---:|---:|---:|"]
    for backend, row in results["backends"].items():
        base = row["in_process"]
        lines.append(f"| {backend} | in-process, batch {args.batch} | {base:.0f} | 1.00 | | | | |")
        lines.append(f"| {backend} | in-process, batch {args.batch}, CSRP | "
                     f"{row['in_process_csrp']:.0f} | {row['in_process_csrp'] / base:.2f} | | | "
                     "| |")
        lines.append(f"| {backend} | in-process CSRP time / model time (median of interleaved "
                     f"calls) | | {row['in_process_csrp_share']:.1%} | < 5% | | | |")
        for model in ("plain", "csrp"):
            for per_request in (1, 16):
                stats = row[f"server_{model}_{per_request}"]
                ratio = stats["images_per_s"] / base
                goal = GOALS[per_request] if model == "plain" else None
                verdict = "" if goal is None else \
                    f">= {goal:.0%} {'met' if ratio >= goal else 'NOT met'}"
                lines.append(f"| {backend} | server, {per_request} img/request"
                             f"{', CSRP' if model == 'csrp' else ''} | "
                             f"{stats['images_per_s']:.0f} | {ratio:.2f} | {verdict} | "
                             f"{stats['p50_ms']:.1f} | {stats['p99_ms']:.1f} | "
                             f"{stats['mean_batch']:.1f} |")
        for per_request in (1, 16):
            plain = row[f"server_plain_{per_request}"]["images_per_s"]
            with_csrp = row[f"server_csrp_{per_request}"]["images_per_s"]
            cost = 1 - with_csrp / plain if plain else float("nan")
            lines.append(f"| {backend} | CSRP cost (throughput), {per_request} img/request | | "
                         f"{cost:+.1%} | < 5% {'met' if cost < 0.05 else 'NOT met'} | | | |")
            stage = stage_cost(row[f"server_plain_{per_request}"],
                               row[f"server_csrp_{per_request}"])
            lines.append(f"| {backend} | CSRP cost (server stage timings), {per_request} "
                         f"img/request | | {stage:+.1%} | < 5% "
                         f"{'met' if stage < 0.05 else 'NOT met'} | | | |")
    backends = results["backends"]
    if "onnx" in backends and "torch" in backends:
        onnx, torch_ = backends["onnx"], backends["torch"]

        def speed(key: str) -> float:
            return onnx[key]["images_per_s"] / torch_[key]["images_per_s"]

        lines += ["", "ONNX Runtime / torch throughput: in-process "
                  f"{onnx['in_process'] / torch_['in_process']:.2f}x, server 16 img/request "
                  f"{speed('server_plain_16'):.2f}x, server 1 img/request "
                  f"{speed('server_plain_1'):.2f}x."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
