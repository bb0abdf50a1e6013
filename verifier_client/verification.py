"""Remote verification (docs/design.md 3.6): query a suspect label-only model with fingerprint sets.

For each set, ``repeats`` times: send all N fingerprints (several per request) and count the
labels that equal the target's; the server draws fresh randomness for every query, so a
randomized preprocessing shows as spread over repeats. Per set the report holds the matching
rate's mean / std / min / max over the completed repeats, the calibration's independent range
and threshold, the verdict (``"stolen"`` when ``mr_mean > threshold``, else ``"not_proven"``)
and the p-value of ``mr_mean`` under the calibration's fitted null distribution.

A repeat whose query still fails after the client's retries is left out and counted in
``repeats_failed`` (never scored as a mismatch). Problems that no retry can fix (unknown model,
non-label answers, a wrong label count, an input shape mismatch, a calibration made for other
sets) stop the run with one clear error and no report.

In-process use (e.g. a demo command)::

    sets = load_sets(["zoo/fingerprints"])
    calibration = load_calibration("zoo/calibration.json")
    report = verify("http://127.0.0.1:8000", "pirate-csrp", sets, calibration, repeats=100)
    print_report(report)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.atomic import write_json
from models.errors import UserError
from models.provenance import code_version, utc_now
from verifier_client.calibration import (
    NullFit,
    empirical_p_value,
    load_calibration,
    thresholds_for,
)
from verifier_client.fingerprint_set import FingerprintSet
from verifier_client.oip_client import OIPClient, Repeats, RetryPolicy

__all__ = [
    "REPORT_FORMAT",
    "calibration_for_sets",
    "load_calibration",
    "print_report",
    "run_verification",
    "summarize_method",
    "verify",
    "write_report",
]

REPORT_FORMAT = "csrp-testbed/verification/v1"
_MAX_REASONS = 5


def calibration_for_sets(sets: Sequence[FingerprintSet], calibration: dict[str, Any],
                         where: str = "calibration file") -> dict[str, dict[str, Any]]:
    """The calibration record of every set (by method), checked by the set file's sha256.

    A set whose method is missing, or whose bytes differ from the calibrated set, is a
    ``UserError`` naming both hashes: the thresholds would belong to other fingerprints.
    """
    methods: dict[str, dict[str, Any]] = calibration.get("methods", {})
    chosen: dict[str, dict[str, Any]] = {}
    for fset in sets:
        entry = methods.get(fset.method)
        if entry is None:
            raise UserError(f"{where} has no calibration for method {fset.method!r} "
                            f"({fset.name}); it covers {', '.join(sorted(methods)) or '-'}: "
                            "calibrate these sets first")
        if entry.get("set_sha256") != fset.sha256:
            raise UserError(f"{where} was made for another {fset.method!r} set "
                            f"(sha256 {str(entry.get('set_sha256'))[:12]}..., "
                            f"{fset.name} is {str(fset.sha256)[:12]}...): recalibrate")
        if fset.method in chosen:
            raise UserError(f"two fingerprint sets for method {fset.method!r}")
        chosen[fset.method] = entry
    return chosen


def summarize_method(fset: FingerprintSet, entry: dict[str, Any], rates: Sequence[float],
                     failures: Sequence[str], rule: str | None = None) -> dict[str, Any]:
    """One method's row of the report from its per-repeat matching rates (pure)."""
    array = np.asarray(rates, dtype=np.float64)
    fit = NullFit.from_dict(entry["fit"])
    threshold, how = float(entry["threshold"]), str(entry["threshold_method"])
    if rule is not None:
        _, threshold, how = thresholds_for(entry["independent_rates"], fit,
                                           float(entry["alpha"]), rule)  # type: ignore[arg-type]
    row: dict[str, Any] = {
        "method": fset.method, "n": fset.n, "repeats": int(array.size),
        "repeats_failed": len(failures),
        "mr_mean": None, "mr_std": None, "mr_min": None, "mr_max": None,
        "independent_min": float(entry["min"]), "independent_max": float(entry["max"]),
        "threshold": threshold, "threshold_method": how, "verdict": "not_proven",
        "p_value": None, "p_value_empirical": None,
        "set_file": str(fset.path), "set_sha256": fset.sha256, "rates": array.tolist(),
        "failures": list(failures[:_MAX_REASONS]),
    }
    if array.size:
        mean = float(array.mean())
        row.update(mr_mean=mean, mr_std=float(array.std(ddof=1)) if array.size > 1 else 0.0,
                   mr_min=float(array.min()), mr_max=float(array.max()),
                   verdict="stolen" if mean > threshold else "not_proven",
                   p_value=fit.sf(mean),
                   p_value_empirical=empirical_p_value(entry["independent_rates"], mean))
    return row


async def run_verification(client: OIPClient, model: str, sets: Sequence[FingerprintSet],
                           repeats: int,
                           on_repeat: Callable[[], None] | None = None) -> list[Repeats]:
    """Query every set ``repeats`` times (``OIPClient.repeat``); per set the answers and the
    failure reasons. Non-transient errors cancel the run and propagate."""
    await client.check_ready()
    meta = await client.model_metadata(model)
    prepared = [client.prepare(meta, fset.images) for fset in sets]
    return await client.repeat(prepared, repeats, on_repeat)


def verify(url: str, model: str, sets: Sequence[FingerprintSet], calibration: dict[str, Any], *,
           repeats: int = 100, batch_size: int = 100, concurrency: int = 8,
           timeout_s: float = 30.0, retry: RetryPolicy | None = None, protocol: str = "auto",
           rule: str | None = None, show_progress: bool = False,
           on_repeat: Callable[[], None] | None = None) -> dict[str, Any]:
    """Verify ``model`` at ``url`` with ``sets`` against ``calibration``; the report (dict).

    ``calibration`` is a loaded calibration document (:func:`load_calibration`); every set must
    be the very file it was made for. ``rule`` (``"max"``, ``"fit"``, ``"conservative"``)
    overrides the calibration's choice of threshold. ``on_repeat`` is called (on the event loop)
    after every finished repeat, completed or failed. Raises ``UserError`` (one line) when the
    run cannot finish: bad input, unreachable server, unknown model, non-label answers, or a set
    none of whose repeats completed.
    """
    if repeats < 1:
        raise UserError(f"repeats must be >= 1; got {repeats}")
    if not sets:
        raise UserError("no fingerprint sets given")
    entries = calibration_for_sets(sets, calibration)
    started, wall0, cpu0 = utc_now(), time.perf_counter(), time.process_time()

    async def run(tick: Callable[[], None] | None) -> tuple[list[Repeats], OIPClient]:
        async with OIPClient(url, batch_size=batch_size, concurrency=concurrency,
                             timeout_s=timeout_s, retry=retry,
                             protocol=protocol) as client:  # type: ignore[arg-type]
            return await run_verification(client, model, sets, repeats, tick), client

    if show_progress:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress("[progress.description]{task.description}", BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), transient=True,
                      console=Console(stderr=True)) as bar:
            task = bar.add_task(f"verify {model}", total=repeats * len(sets))

            def tick() -> None:
                bar.advance(task)
                if on_repeat:
                    on_repeat()

            tallies, client = asyncio.run(run(tick))
    else:
        tallies, client = asyncio.run(run(on_repeat))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0

    empty = [fset.method for fset, tally in zip(sets, tallies, strict=True) if not tally.answers]
    if empty:
        reason = next(t.failures[-1] for t in tallies if not t.answers)
        raise UserError(f"no repeat completed for {', '.join(empty)} ({reason})")
    rows = [summarize_method(fset, entries[fset.method], tally.rates(fset.labels_array),
                             tally.failures, rule)
            for fset, tally in zip(sets, tallies, strict=True)]
    queries = sum(row["repeats"] * row["n"] for row in rows)
    return {
        "format": REPORT_FORMAT, "url": url, "model": model, "time": started,
        "code_version": code_version(), "repeats_requested": repeats, "batch_size": batch_size,
        "concurrency": concurrency, "protocol": client.protocol,
        "requests_sent": client.requests_sent, "retries": client.retries,
        "wall_seconds": wall, "client_seconds": cpu,
        "client_cpu_fraction": cpu / wall if wall > 0 else 0.0,
        "queries": queries, "queries_per_second": queries / wall if wall > 0 else 0.0,
        "calibration_created": calibration.get("created"),
        "methods": rows,
    }


def write_report(path: str | Path, report: dict[str, Any]) -> Path:
    """Write the report atomically (a reader never sees half a file)."""
    write_json(path, report)
    return Path(path)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_report(report: dict[str, Any], console: Any = None) -> None:
    """The verdict table (rich): one row per method; every number is also in the JSON."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    sizes = sorted({row["n"] for row in report["methods"]})
    table = Table(title=f"{report['model']} at {report['url']}: N = "
                        f"{', '.join(map(str, sizes))}, {report['repeats_requested']} repeats",
                  box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for column in ("method", "repeats", "MR mean±std", "independent", "threshold", "p-value",
                   "verdict"):
        table.add_column(column, justify="left" if column in ("method", "verdict") else "right")
    for row in report["methods"]:
        verdict = row["verdict"]
        style = "bold red" if verdict == "stolen" else "green"
        repeats = f"{row['repeats']}/{row['repeats'] + row['repeats_failed']}"
        how = "max" if row["threshold_method"] == "independent-max" else "fit"
        p_value = row["p_value"]
        table.add_row(
            row["method"], repeats, f"{_fmt(row['mr_mean'])}±{_fmt(row['mr_std'])}",
            f"[{_fmt(row['independent_min'], 2)}, {_fmt(row['independent_max'], 2)}]",
            f"{row['threshold']:.3f} {how}", "-" if p_value is None else f"{p_value:.2g}",
            f"[{style}]{verdict}[/{style}]")
    console.print(table)
    failed = sum(row["repeats_failed"] for row in report["methods"])
    console.print(f"{report['queries']} queries in {report['wall_seconds']:.1f} s "
                  f"({report['queries_per_second']:.0f}/s, {report['protocol']}); client CPU "
                  f"{report['client_seconds']:.1f} s = {report['client_cpu_fraction']:.0%} of wall"
                  + (f"; {failed} repeat(s) failed and were left out" if failed else ""))
