"""Running a load test: every point (model x concurrency or rate), the server's stage
breakdown around it, and the report. See the package docstring for what each point holds."""

from __future__ import annotations

import asyncio
import platform
import random
import sys
import time
from dataclasses import asdict
from typing import Any

import httpx

from models.provenance import code_version, utc_now
from verifier_client.studies.loadtest.latency import latency_summary
from verifier_client.studies.loadtest.report import level_label, overhead
from verifier_client.studies.loadtest.server_metrics import scrape, stage_breakdown
from verifier_client.studies.loadtest.settings import LoadSettings, check_loopback
from verifier_client.studies.loadtest.wire import Target, prepare
from verifier_client.studies.loadtest.workloads import Tally, closed_loop, open_loop


def _point(target: Target, mode: str, level: float, tally: Tally, elapsed: float,
           window: float, server: dict[str, Any], settings: LoadSettings) -> dict[str, Any]:
    ok = len(tally.latencies)
    return {
        "model": target.model,
        "mode": mode,
        "concurrency": int(level) if mode == "closed" else None,
        "rate": level if mode == "open" else None,
        "arrivals": ("poisson" if settings.poisson else "constant") if mode == "open" else None,
        "issued": tally.issued,
        "completed": ok,
        "failed": sum(tally.errors.values()),
        "elapsed_s": round(elapsed, 3),
        "offered_rps": round(tally.issued / window, 2) if window > 0 else None,
        "achieved_rps": round(ok / elapsed, 2) if elapsed > 0 else None,
        "achieved_ips": round(ok * target.images_per_request / elapsed, 2) if elapsed > 0
        else None,
        "hit_max_requests": tally.issued >= settings.max_requests,
        "latency_ms": latency_summary(tally.latencies),
        "errors": dict(sorted(tally.errors.items())),
        "server": server,
    }


async def _run(settings: LoadSettings, progress: bool) -> dict[str, Any]:
    host, port = check_loopback(settings.url, settings.allow_remote)
    levels = ([("closed", float(c)) for c in settings.concurrency]
              + [("open", float(r)) for r in settings.rates])
    rng = random.Random(settings.seed)
    points: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=settings.url, timeout=10.0) as control:
        targets = await prepare(settings, host, port, control)
        total = len(levels) * len(targets)
        for index, (mode, level) in enumerate(levels):
            order = targets if index % 2 == 0 else targets[::-1]  # ABBA: no side always first
            for target in order:
                before = await scrape(control)
                if mode == "closed":
                    tally, elapsed, window = await closed_loop(target, host, port, int(level),
                                                                settings)
                else:
                    tally, elapsed, window = await open_loop(target, host, port, level,
                                                              settings, rng)
                after = await scrape(control)
                point = _point(target, mode, level, tally, elapsed, window,
                               stage_breakdown(before, after, target.model), settings)
                points.append(point)
                if progress:
                    latency = point["latency_ms"]
                    print(f"[{len(points)}/{total}] {target.model} {level_label(point)}: "
                          f"{point['achieved_rps']} req/s, p50 {latency['p50']} ms, p99 "
                          f"{latency['p99']} ms, {point['failed']} failed", file=sys.stderr)
    models = [t.model for t in targets]
    return {
        "url": settings.url,
        "models": models,
        "server_models": {t.model: t.parameters for t in targets},
        "settings": {k: v for k, v in asdict(settings).items() if k not in ("url", "models")},
        "client": {"implementation": "asyncio HTTP/1.1 keep-alive, binary tensor requests",
                   "python": platform.python_version(), "code_version": code_version()},
        "created": utc_now(),
        "points": points,
        "overhead": overhead(points, models) if len(models) == 2 else [],
    }


def run_loadtest(settings: LoadSettings, progress: bool = False) -> dict[str, Any]:
    """Run every point and return the report (see the module docstring)."""
    started = time.perf_counter()
    report = asyncio.run(_run(settings, progress))
    report["wall_s"] = round(time.perf_counter() - started, 2)
    return report
