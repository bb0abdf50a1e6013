"""The paper's table for a zoo (seed paper, Tables 2-4): accuracy and T_avg per method per row.

Rows: target, compression (``int8``), fine-tuning (``ftal``), pruning 0.1 / 0.5, the
independent models' [min, max], CSRP only (``csrp``), CSRP + fine-tuning (``csrp-ft``) and RDG
(``rdg-ft``); a row whose entry is missing is left out. Matching rates are measured in-process
(``calibration.local_rates``: the entry's predictor behind its own preprocessing, ``repeats``
seeded draws) or, with ``via_server``, through a real ``python -m server`` on 127.0.0.1
(``calibration.remote_rates``: fresh server-side draws per query).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from models.errors import UserError
from models.local_server import LocalServer
from models.provenance import code_version, utc_now
from models.repository import Entry, list_entries
from verifier_client.calibration import local_rates, remote_rates
from verifier_client.fingerprint_set import load_sets
from verifier_client.studies.report_files import (
    DISTINCT_COLOURS,
    png_bytes,
    shade_independent_band,
    write_report,
)

ROWS = (("target", "target"), ("compression", "int8"), ("fine-tuning", "ftal"),
        ("pruning 0.1", "prune-0.1"), ("pruning 0.5", "prune-0.5"),
        ("independent", "indep-*"), ("CSRP only", "csrp"), ("CSRP + fine-tuning", "csrp-ft"),
        ("RDG", "rdg-ft"))


def served_accuracy(entry: Entry) -> float | None:
    """Top-1 as the pirate serves it: under its preprocessing when it has one."""
    config = entry.config
    key = "transform_top1" if config.preprocessing else "test_top1"
    value = config.metrics.get(key, config.metrics.get("test_top1"))
    return None if value is None else float(value)


def evaluate_zoo(zoo: Path, repeats: int = 10, via_server: bool = False,
                 seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Measure every row; returns the JSON-ready table (rates per method, accuracy)."""
    entries = set(list_entries(zoo))
    sets = load_sets([zoo / "fingerprints"])
    independents = sorted(e for e in entries if e.startswith("indep-"))
    if "target" not in entries or not independents:
        raise UserError(f"{zoo}: a zoo needs a target and indep-* entries")
    served = [name for _, name in ROWS if name in entries]
    methods = [s.method for s in sets]
    loaded = {name: Entry.load(zoo / name) for name in served + independents}
    started = time.perf_counter()
    with _bar(len(served) + len(independents), progress) as tick:
        if via_server:
            with LocalServer(zoo, "--models", ",".join(served + independents),
                             threads=2) as server:
                rates = {name: tick(asyncio.run(remote_rates(server.url, name, sets, repeats,
                                                             {})))
                         for name in served + independents}
        else:
            rates = {name: tick(local_rates(loaded[name], sets, repeats, seed))
                     for name in served + independents}
    rows = []
    for label, name in ROWS:
        if name == "indep-*":
            accs = [served_accuracy(loaded[n]) for n in independents]
            rows.append({"row": label, "models": independents,
                         "accuracy": [min(accs), max(accs)],
                         "rates": {m: [min(rates[n][i] for n in independents),
                                       max(rates[n][i] for n in independents)]
                                   for i, m in enumerate(methods)}})
        elif name in entries:
            rows.append({"row": label, "models": [name], "accuracy": served_accuracy(loaded[name]),
                         "rates": {m: rates[name][i] for i, m in enumerate(methods)}})
    return {"zoo": str(zoo), "via_server": via_server, "repeats": repeats, "seed": seed,
            "methods": methods, "rows": rows, "seconds": round(time.perf_counter() - started, 1),
            "time": utc_now(), "code_version": code_version()}


@contextlib.contextmanager
def _bar(total: int, show: bool) -> Iterator[Callable[[Any], Any]]:
    """A progress bar on stderr (transient; off when ``show`` is false or stderr is no
    terminal); yields ``tick(value) -> value``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress("evaluate", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True,
                  disable=not (show and console.is_terminal)) as bar:
        task = bar.add_task("models", total=total)

        def tick(value: Any) -> Any:
            bar.advance(task)
            return value

        yield tick


def _cell(value: float | list[float] | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return f"[{value[0]:.2f}, {value[1]:.2f}]"
    return f"{value:.2f}"


def to_markdown(table: dict[str, Any]) -> str:
    methods = table["methods"]
    lines = ["| row | ACC-top1 | " + " | ".join(methods) + " |",
             "|---|---:|" + "---:|" * len(methods)]
    for row in table["rows"]:
        lines.append(f"| {row['row']} | {_cell(row['accuracy'])} | "
                     + " | ".join(_cell(row["rates"][m]) for m in methods) + " |")
    how = "via a real server" if table["via_server"] else "in-process"
    return (f"T_avg over {table['repeats']} repeats, {how}; independent = [min, max] over "
            f"{len(table['rows'][5]['models']) if len(table['rows']) > 5 else '?'} models\n\n"
            + "\n".join(lines) + "\n")


def to_csv(table: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["row", "accuracy", *table["methods"]])
    for row in table["rows"]:
        writer.writerow([row["row"], _cell(row["accuracy"]),
                         *(_cell(row["rates"][m]) for m in table["methods"])])
    return buffer.getvalue()


def plot(table: dict[str, Any]) -> bytes:
    """Matching rate per method per row, with the independent band shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = table["methods"]
    rows = [r for r in table["rows"] if r["row"] != "independent"]
    band = next((r for r in table["rows"] if r["row"] == "independent"), None)
    figure, axes = plt.subplots(figsize=(11.5, 4.8))
    width = 0.8 / max(1, len(rows))
    for i, row in enumerate(rows):
        xs = [j + (i - len(rows) / 2) * width for j in range(len(methods))]
        axes.bar(xs, [row["rates"][m] for m in methods], width, label=row["row"],
                 color=DISTINCT_COLOURS[i % len(DISTINCT_COLOURS)])
    if band is not None:
        shade_independent_band(axes, methods, band["rates"])
    axes.set_xticks(range(len(methods)), methods)
    axes.set_xlabel("fingerprinting method")
    axes.set_ylabel(f"matching rate T_avg ({table['repeats']} repeats)")
    axes.set_ylim(0, 1.05)
    axes.set_title("The paper's table on the zoo: matching rate per pirate and method "
                   "(grey: the independent models' [min, max])", fontsize=10)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside, hiding none
    figure.tight_layout()
    return png_bytes(figure)


def write_outputs(table: dict[str, Any], out: Path) -> list[Path]:
    """``evaluation.json``, ``.md``, ``.csv`` and ``.png`` under ``out``, each atomically."""
    return write_report(out, "evaluation", table, to_markdown(table), to_csv(table), plot(table))
