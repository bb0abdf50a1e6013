"""Remote verification (docs/design.md 3.6): query a suspect label-only model with fingerprint sets.

For each set, ``repeats`` times: send all N fingerprints (several per request) and record which
answers equal the target's labels; the server draws fresh randomness for every query, so a
randomized preprocessing shows as spread over repeats. The verdicts come from
``verifier_client.decision`` (per method ``stolen`` / ``not_proven`` / ``inconclusive`` with
both p-values and the suspect's bootstrap interval, and one overall verdict whose family-wise
false-accusation rate is at most ``alpha``); the legacy threshold verdict is kept beside them.

With a ``budget`` (queries, i.e. fingerprint images sent) the run is sequential: after every
round of ``repeats`` repeats, the sets whose method is inconclusive (and whose answers still
vary from repeat to repeat) get another round, until every method is decided or the budget
would be exceeded. The report says how many queries were used.

Missing data never makes a verdict silently. A repeat whose query still fails after the
client's retries is left out and counted in ``repeats_failed`` (never scored as a mismatch); if
fewer than ``min_success`` of a set's planned repeats were answered, or the server stopped
answering for longer than the client's ``unreachable_after_s``, the overall verdict is
``no_verdict`` with the reason. Problems that no retry can fix (unknown model, non-label
answers, a wrong label count, an input shape mismatch, a calibration made for other sets) stop
the run with one clear error and no report.

In-process use (e.g. a demo command)::

    sets = load_sets(["zoo/fingerprints"])
    calibration = load_calibration("zoo/calibration.json")
    report = verify("http://127.0.0.1:8000", "csrp", sets, calibration, repeats=20)
    print_report(report)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.atomic import write_json
from models.cli_support import print_rich
from models.errors import UserError
from models.provenance import code_version, utc_now
from verifier_client.calibration import load_calibration, protocol_of
from verifier_client.decision import decide_rows, method_row
from verifier_client.fingerprint_set import FingerprintSet
from verifier_client.oip_client import (
    OIPClient,
    Repeats,
    RetryPolicy,
    ServerUnreachableError,
)
from verifier_client.protocol import Protocol
from verifier_client.verdict import DEFAULT_ALPHA, check_calibration_size, combined_models_needed
from verifier_client.votes import set_outcomes

__all__ = [
    "NO_VERDICT",
    "REPORT_FORMAT",
    "VerifyOptions",
    "calibration_for_sets",
    "load_calibration",
    "print_report",
    "run_verification",
    "summarize_method",
    "verify",
    "write_report",
]

REPORT_FORMAT = "csrp-testbed/verification/v1"
NO_VERDICT = "no_verdict"
DEFAULT_MIN_SUCCESS = 0.9


@dataclass(frozen=True)
class VerifyOptions:
    """How verification decides: family-wise ``alpha``, which p-value decides, the share of
    planned repeats that must be answered, the bootstrap seed, repeats per round, the query
    budget (``None``: one round), the legacy threshold rule, and ``votes``: each repeat asks
    every fingerprint K times and scores its modal label (K x the queries)."""

    alpha: float = DEFAULT_ALPHA
    decide_by: str = "auto"
    min_success: float = DEFAULT_MIN_SUCCESS
    seed: int = 0
    repeats: int = 20
    budget: int | None = None
    rule: str | None = None
    votes: int = 1
    combine: str = "mean"

    def check(self, sets: Sequence[FingerprintSet],
              entries: dict[str, dict[str, Any]], protocol: Protocol | None = None) -> None:
        """``UserError`` (one line) for settings the sets or the calibration cannot support,
        among them a protocol (votes, repeats) other than the calibration's."""
        if protocol is not None:
            protocol.check_suspect(self.votes, self.repeats, randomized=None)
        if self.repeats < 1 or self.votes < 1:
            raise UserError(f"repeats and votes must be >= 1; got {self.repeats} and "
                            f"{self.votes}")
        if not 0.0 < self.min_success <= 1.0:
            raise UserError(f"min_success must be in (0, 1]; got {self.min_success}")
        one_round = sum(fset.query_count for fset in sets) * self.repeats * self.votes
        if self.budget is not None and self.budget < one_round:
            votes = f" x {self.votes} votes" if self.votes > 1 else ""
            raise UserError(f"a budget of {self.budget} queries cannot pay for one round "
                            f"({self.repeats} repeat(s){votes} of every set = {one_round} "
                            "queries)")
        smallest = min(len(entry["independent_rates"]) for entry in entries.values())
        if self.decide_by in ("parametric", "rank"):
            check_calibration_size(smallest, self.alpha, len(sets), self.decide_by)
        elif self.decide_by == "combined" and smallest < combined_models_needed(self.alpha):
            raise UserError(f"the calibration has {smallest} models; the combined rank test at "
                            f"alpha {self.alpha:g} needs at least "
                            f"{combined_models_needed(self.alpha)}")


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
    """One method's row from per-repeat matching rates alone (an older interface: the
    fingerprints' individual outcomes are unknown, so the interval treats every repeat's rate
    as one draw). Prefer :func:`verifier_client.decision.method_row` with the outcomes."""
    outcomes = np.zeros((len(rates), fset.n), dtype=bool)
    for i, rate in enumerate(rates):
        outcomes[i, :round(rate * fset.n)] = True
    row = method_row(fset, entry, outcomes, failures, rule=rule)
    row["rates"] = [float(r) for r in rates]
    row["mr_mean"] = float(np.mean(rates))
    decide_rows([row], float(entry.get("alpha", DEFAULT_ALPHA)))
    return row


@dataclass
class Tally:
    """A set's answers so far: one bool outcome row per answered repeat, and the failures."""

    outcomes: list[np.ndarray] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    requested: int = 0
    pending: Repeats | None = None

    def settle(self, fset: FingerprintSet, votes: int = 1) -> None:
        """Move the round in progress (``pending``) into the tally (with ``votes`` K, every K
        answers are one repeat scoring the modal labels)."""
        if self.pending is not None:
            self.outcomes.extend(set_outcomes(fset, self.pending.answers, votes))
            self.failures.extend(self.pending.failures)
            self.pending = None


async def run_verification(client: OIPClient, model: str, sets: Sequence[FingerprintSet],
                           repeats: int,
                           on_repeat: Callable[[], None] | None = None) -> list[Repeats]:
    """Query every set ``repeats`` times (``OIPClient.repeat``); per set the answers and the
    failure reasons. Non-transient errors cancel the run and propagate."""
    await client.check_ready()
    meta = await client.model_metadata(model)
    prepared = [client.prepare(meta, fset.queries, fset.num_classes) for fset in sets]
    return await client.repeat(prepared, repeats, on_repeat)


def _rows(sets: Sequence[FingerprintSet], entries: dict[str, dict[str, Any]],
          tallies: Sequence[Tally], options: VerifyOptions) -> tuple[list[dict[str, Any]],
                                                                     dict[str, Any]]:
    rows = [method_row(fset, entries[fset.method], np.stack(tally.outcomes), tally.failures,
                       planned=tally.requested, decide_by=options.decide_by,
                       seed=options.seed, rule=options.rule)
            for fset, tally in zip(sets, tallies, strict=True)]
    return rows, decide_rows(rows, options.alpha, options.decide_by, entries, options.combine)


async def _query_rounds(client: OIPClient, model: str, sets: Sequence[FingerprintSet],
                        entries: dict[str, dict[str, Any]], options: VerifyOptions,
                        tick: Callable[[], None] | None, state: dict[str, Any]) -> None:
    """Round one: ``repeats`` of every set; then, while a method is inconclusive, its answers
    still vary and the budget allows, ``repeats`` more of the inconclusive sets. Progress goes
    into ``state`` (``tallies``, ``rounds``) as it happens, so an outage keeps what came in."""
    await client.check_ready()
    meta = await client.model_metadata(model)
    prepared = [client.prepare(meta, fset.queries, fset.num_classes) for fset in sets]
    tallies: list[Tally] = state["tallies"]
    todo, spent = list(range(len(sets))), 0
    while todo:
        results = [Repeats() for _ in todo]
        for index, pending in zip(todo, results, strict=True):
            tallies[index].requested += options.repeats
            tallies[index].pending = pending  # kept if an outage ends the round part-way
        await client.repeat([prepared[i] for i in todo], options.repeats * options.votes, tick,
                            into=results)
        for index in todo:
            tallies[index].settle(sets[index], options.votes)
            spent += options.repeats * options.votes * sets[index].query_count
        state["rounds"] += 1
        if options.budget is None or any(not t.outcomes for t in tallies):
            break
        rows, _ = _rows(sets, entries, tallies, options)
        todo = [i for i, row in enumerate(rows)
                if row["verdict"] == "inconclusive" and not row["saturated"]]
        if spent + sum(options.repeats * options.votes * sets[i].query_count for i in todo) > \
                options.budget:
            break


def verify(url: str, model: str, sets: Sequence[FingerprintSet], calibration: dict[str, Any], *,
           repeats: int = 20, batch_size: int = 100, concurrency: int = 8,
           timeout_s: float = 30.0, retry: RetryPolicy | None = None, protocol: str = "auto",
           unreachable_after_s: float = 30.0, options: VerifyOptions | None = None,
           rule: str | None = None, show_progress: bool = False,
           on_repeat: Callable[[], None] | None = None) -> dict[str, Any]:
    """Verify ``model`` at ``url`` with ``sets`` against ``calibration``; the report (dict).

    ``calibration`` is a loaded calibration document (:func:`load_calibration`); every set must
    be the very file it was made for. ``options`` set the decision (``repeats`` and ``rule``
    are shortcuts for its fields). ``on_repeat`` is called (on the event loop) after every
    finished repeat. Raises ``UserError`` (one line) when the run cannot start or a problem no
    retry fixes occurs; a server that stops answering gives a ``no_verdict`` report instead.
    """
    if not sets:
        raise UserError("no fingerprint sets given")
    options = options or VerifyOptions(repeats=repeats, rule=rule)
    entries = calibration_for_sets(sets, calibration)
    query_protocol = protocol_of(calibration)
    options.check(sets, entries, query_protocol)
    started, wall0, cpu0 = utc_now(), time.perf_counter(), time.process_time()
    client_options = {"batch_size": batch_size, "concurrency": concurrency,
                      "timeout_s": timeout_s, "retry": retry, "protocol": protocol,
                      "unreachable_after_s": unreachable_after_s}
    outcome = _run(url, model, sets, entries, options, client_options, show_progress, on_repeat)
    tallies, rounds, client, stopped = outcome
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    report: dict[str, Any] = {
        "format": REPORT_FORMAT, "url": url, "model": model, "time": started,
        "code_version": code_version(), "repeats_requested": options.repeats,
        "repeats_per_round": options.repeats, "rounds": rounds, "budget": options.budget,
        "batch_size": batch_size, "concurrency": concurrency, "protocol": client.protocol,
        "requests_sent": client.requests_sent, "retries": client.retries,
        "wall_seconds": wall, "client_seconds": cpu,
        "client_cpu_fraction": cpu / wall if wall > 0 else 0.0,
        "calibration_created": calibration.get("created"), "seed": options.seed,
        "min_success": options.min_success, "votes": options.votes,
        "calibration_protocol": query_protocol.to_dict()}
    missing = _missing_data(sets, tallies, options.min_success, stopped)
    if missing is not None:
        report.update(methods=[_accounting(s, t) for s, t in zip(sets, tallies, strict=True)],
                      queries=sum(len(t.outcomes) * s.query_count
                                  for s, t in zip(sets, tallies, strict=True))
                      * options.votes,
                      overall={"verdict": NO_VERDICT, "reason": missing, "alpha": options.alpha})
    else:
        # the answers themselves say whether a front is randomized: against a calibration
        # measured without one, no verdict (the null would not be the suspect's)
        query_protocol.check_suspect(options.votes, options.repeats,
                                     randomized=any(_varies(t) for t in tallies))
        rows, overall = _rows(sets, entries, tallies, options)
        report.update(methods=rows, overall=overall,
                      queries=sum(row["repeats"] * row["queries_per_repeat"] for row in rows)
                      * options.votes)
    report["queries_used"] = report["queries"]
    report["queries_per_second"] = report["queries"] / wall if wall > 0 else 0.0
    return report


def _run(url: str, model: str, sets: Sequence[FingerprintSet],
         entries: dict[str, dict[str, Any]], options: VerifyOptions,
         client_options: dict[str, Any], show_progress: bool,
         on_repeat: Callable[[], None] | None) -> tuple[list[Tally], int, OIPClient, str | None]:
    """The rounds of queries, with a progress bar when asked; a server that stopped answering
    ends the run with what was collected and the reason."""
    state: dict[str, Any] = {"tallies": [Tally() for _ in sets], "rounds": 0, "stopped": None}

    async def run(tick: Callable[[], None] | None) -> OIPClient:
        async with OIPClient(url, **client_options) as client:
            try:
                await _query_rounds(client, model, sets, entries, options, tick, state)
            except ServerUnreachableError as error:
                for tally, fset in zip(state["tallies"], sets, strict=True):
                    tally.settle(fset, options.votes)
                if not any(t.outcomes for t in state["tallies"]):
                    raise  # nothing came in: the run could not start
                state["stopped"] = str(error)
            return client

    if not show_progress:
        client = asyncio.run(run(on_repeat))
    else:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        console = Console(stderr=True)
        with Progress("[progress.description]{task.description}", BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), transient=True,
                      console=console, disable=not console.is_terminal) as bar:
            total = options.repeats * options.votes * len(sets)
            task = bar.add_task(f"verify {model}", total=total)

            def tick() -> None:
                bar.advance(task)
                if on_repeat:
                    on_repeat()

            client = asyncio.run(run(tick))
    return state["tallies"], state["rounds"], client, state["stopped"]


def _varies(tally: Tally) -> bool:
    """Whether one fingerprint got different outcomes in different repeats."""
    if len(tally.outcomes) < 2:
        return False
    stacked = np.stack(tally.outcomes)
    return bool((stacked != stacked[:1]).any())


def _accounting(fset: FingerprintSet, tally: Tally) -> dict[str, Any]:
    """A method's row when there is no verdict: what was asked, answered and why not."""
    rates = [float(o.mean()) for o in tally.outcomes]
    return {"method": fset.method, "n": fset.n, "repeats": len(rates),
            "repeats_failed": len(tally.failures), "repeats_planned": tally.requested,
            "mr_mean": float(np.mean(rates)) if rates else None, "rates": rates,
            "failures": tally.failures[:5], "verdict": NO_VERDICT,
            "set_file": fset.name, "set_sha256": fset.sha256}


def _missing_data(sets: Sequence[FingerprintSet], tallies: Sequence[Tally], min_success: float,
                  stopped: str | None) -> str | None:
    """Why there is too little evidence for a verdict, or ``None``."""
    if stopped is not None:
        return f"the server stopped answering ({stopped})"
    for fset, tally in zip(sets, tallies, strict=True):
        answered = len(tally.outcomes)
        if answered < min_success * max(tally.requested, 1) or answered == 0:
            reason = f" (last failure: {tally.failures[-1]})" if tally.failures else ""
            return (f"only {answered} of {tally.requested} planned repeats of {fset.method} "
                    f"were answered, fewer than the required {min_success:.0%}{reason}")
    return None


def write_report(path: str | Path, report: dict[str, Any]) -> Path:
    """Write the report atomically (a reader never sees half a file)."""
    write_json(path, report)
    return Path(path)


_STYLES = {"stolen": "bold red", "inconclusive": "yellow", "not_proven": "green",
           NO_VERDICT: "bold yellow"}


def overall_line(report: dict[str, Any]) -> str:
    """The overall verdict with what it guarantees (plain text, one line)."""
    overall = report["overall"]
    if overall["verdict"] == NO_VERDICT:
        return f"overall: no verdict: {overall['reason']}"
    by = f" (by {', '.join(overall['stolen_by'])})" if overall["stolen_by"] else ""
    if overall.get("decided_by") == "combined" and overall["verdict"] == "stolen":
        by = " (combined test" + (f"; methods {', '.join(overall['stolen_by'])}" if
                                  overall["stolen_by"] else "") + ")"
    return (f"overall: {overall['verdict']}{by} at family-wise alpha {overall['alpha']:g}: "
            f"{overall['guarantee']}")


def print_report(report: dict[str, Any], console: Any = None) -> None:
    """The verdict table (rich): one row per method, then the overall verdict; every number is
    also in the JSON."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=max(120, Console().width))  # piped: no wrapping at 80
    if report["methods"] and report["overall"]["verdict"] != NO_VERDICT:
        sizes = sorted({row["n"] for row in report["methods"]})
        table = Table(title=f"{report['model']} at {report['url']}: N = "
                            f"{', '.join(map(str, sizes))}, {report['queries_used']} queries "
                            f"in {report['rounds']} round(s)",
                      box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
        for column in ("method", "repeats", "MR [95% interval]", "independent", "p param.",
                       "p rank", "Holm level", "verdict"):
            table.add_column(column, justify="left" if column in ("method", "verdict")
                             else "right")
        for row in report["methods"]:
            style = _STYLES[row["verdict"]]
            low, high = row["interval"]
            table.add_row(
                row["method"], f"{row['repeats']}/{row['repeats_planned']}",
                f"{row['mr_mean']:.3f} [{low:.2f}, {high:.2f}]",
                f"[{row['independent_min']:.2f}, {row['independent_max']:.2f}]",
                f"{row['p_value_parametric']:.2g}", f"{row['p_value_rank']:.2g}",
                f"{row['holm_level']:.2g}", f"[{style}]{row['verdict']}[/{style}]")
        print_rich(table, console)
        for row in report["methods"]:
            if row.get("reach"):
                console.print(f"{row['method']}: {row['reach']}", soft_wrap=True)
    overall = report["overall"]
    if overall.get("combined"):
        test = overall["combined"]
        console.print(f"combined test: p = {test['p_value']:.3g} ({test['statistic']}, against "
                      f"{test['models']} calibration models, floor {test['p_floor']:.3g}; least "
                      f"favourable front: {test['least_favourable']})", soft_wrap=True)
    if overall.get("note"):
        console.print(f"note: {overall['note']}", soft_wrap=True)
    style = _STYLES[overall["verdict"]]
    console.print(f"[{style}]{overall_line(report)}[/{style}]", soft_wrap=True)
    failed = sum(row["repeats_failed"] for row in report["methods"])
    console.print(f"{report['queries']} queries in {report['wall_seconds']:.1f} s "
                  f"({report['queries_per_second']:.0f}/s, {report['protocol']}); client CPU "
                  f"{report['client_seconds']:.1f} s = {report['client_cpu_fraction']:.0%} of wall"
                  + (f"; {failed} repeat(s) failed and were left out" if failed else ""))
