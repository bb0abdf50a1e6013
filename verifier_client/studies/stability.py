"""RDG vs CSRP stability at equal accuracy (seed paper, Section 5.4 and Table 5).

The paper's question: a preprocessing-only adversarial-example defense (RDG, Qiu et al., IEEE
Trans. Computers 2021) and CSRP cost the same clean accuracy; over 100 verification tests, what
are the minimum and maximum matching rates each leaves the owner's fingerprints? The paper finds
RDG's range wide and reaching 1.0 (it does not stop verification) and CSRP's narrow and below
the independent models' maximum. Its setting was CIFAR-10, VGG-16, both at 0.83 top-1.

The study here, on a zoo (defaults: ``target`` behind the zoo's ``csrp`` preprocessing):

1. CSRP's top-1 on the first ``samples`` test images (``acc_repeats`` draws, per-sample: a
   shared draw has the same expected accuracy, only a wider spread).
2. RDG's ``distort_limit`` found by bisection so that its top-1 matches CSRP's (common random
   numbers: the same seed gives the same uniforms at every ``d``, so top-1 falls smoothly in
   ``d``), unless given; ``num_cells`` 10 as in the authors' code.
3. Per fingerprint set, ``repeats`` tests (100 in the paper) of all N fingerprints for each
   transform, in each draw mode:

   * ``per-sample``: every fingerprint gets its own draw in every test. This is how this
     project's server applies CSRP/RDG and what the paper's Algorithm 1 describes.
   * ``shared``: one draw per test, applied to every fingerprint in it, as code that draws once
     per call and is handed the whole query would. The paper does not say which its RDG run
     used; this mode shows what the choice does to the spread.

With ``entries`` the rows are zoo entries behind their own preprocessing instead (the
data-limited pirates: ``csrp-ft`` and ``rdg-ft-matched``, fine-tuned on 5% of the training set
behind CSRP and behind the accuracy-matched RDG), compared at whatever top-1 fine-tuning bought
each.

Every test's rate is kept, with min, max, mean, sample std, the binomial std
``sqrt(m (1 - m) / N)`` that independent per-fingerprint coin flips would give at mean ``m``
(per-sample draws can only be at or below it; a shared draw correlates the fingerprints and can
exceed it), and the share of tests whose rate is above the independent models' maximum (what a
single test would call "stolen" under the independent-max rule).
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from torch import Tensor

from models.adapt import accuracy_under, as_transform
from models.datasets import ImageData, load_dataset
from models.errors import UserError
from models.provenance import code_version, utc_now
from models.repository import Entry, list_entries, load_config
from models.runtime import load_predictor
from models.transforms import RDG
from verifier_client.calibration import local_rates
from verifier_client.fingerprint_set import FingerprintSet, load_sets
from verifier_client.matching import MatchingResult, matching_rates
from verifier_client.studies.report_files import png_bytes, shade_independent_band, write_report

DRAW_MODES = ("per-sample", "shared")
DEFAULT_REPEATS = 100  # the paper's 100 tests
DEFAULT_SAMPLES = 2000  # test images for the accuracy match
DEFAULT_ACC_REPEATS = 3
DEFAULT_TOLERANCE = 0.005  # |top-1(RDG) - top-1(CSRP)| that ends the search
MAX_DISTORT_LIMIT = 0.95
SEARCH_STEPS = 12

LogitsFn = Callable[[Tensor], Tensor]


class SharedDraw:
    """A transform module with ONE parameter draw per call, applied to every image in the batch.

    Wraps any module from ``models.transforms.build_transform`` (``generate_params`` /
    ``apply_params``): the draw for a batch of 1 is repeated along the batch, so a test's N
    fingerprints all see the same padding offsets (CSRP) or the same grid (RDG).
    """

    def __init__(self, transform: torch.nn.Module) -> None:
        self.transform = transform

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        params = self.transform.generate_params((1, *images.shape[1:]), generator)
        n = images.shape[0]
        shared = {key: value.expand(n, *value.shape[1:]).contiguous()
                  for key, value in params.items()}
        return self.transform.apply_params(images, shared)

    def spec(self) -> dict[str, object]:
        return {**self.transform.spec(), "draw": "shared"}


def top1_draws(logits_fn: LogitsFn, data: ImageData, spec: dict[str, Any] | None,
               repeats: int, seed: int) -> list[float]:
    """Top-1 on ``data`` behind ``spec`` for each of ``repeats`` draws (draw ``r`` seeded
    ``seed + r``, ``models.adapt.accuracy_under``); one clean pass for ``spec = None``."""
    return accuracy_under(logits_fn, data, spec, repeats, seed).top1s


def rdg_for_accuracy(logits_fn: LogitsFn, data: ImageData, target_top1: float, *,
                     num_cells: int = 10, seed: int = 0, tolerance: float = DEFAULT_TOLERANCE,
                     steps: int = SEARCH_STEPS) -> tuple[float, float, list[dict[str, float]]]:
    """The RDG ``distort_limit`` in ``[0, 0.95]`` whose top-1 on ``data`` is closest to
    ``target_top1``, by bisection with one seeded draw per probe (common random numbers).

    Returns ``(distort_limit, top1, trace)``; stops once within ``tolerance`` or after ``steps``
    probes. ``UserError`` when even ``0.95`` keeps top-1 above the target.
    """
    def probe(d: float) -> float:
        top1 = top1_draws(logits_fn, data, {"name": "rdg", "distort_limit": d,
                                       "num_cells": num_cells}, 1, seed)[0]
        trace.append({"distort_limit": round(d, 5), "top1": top1})
        return top1

    trace: list[dict[str, float]] = []
    low, high = 0.0, MAX_DISTORT_LIMIT
    if probe(high) > target_top1 + tolerance:
        raise UserError(f"RDG at distort_limit {high} keeps top-1 {trace[-1]['top1']:.4f}, above "
                        f"the {target_top1:.4f} to match: it cannot cost as much accuracy")
    best = trace[-1]
    for _ in range(steps - 1):
        middle = (low + high) / 2
        top1 = probe(middle)
        if abs(top1 - target_top1) < abs(best["top1"] - target_top1):
            best = trace[-1]
        if abs(top1 - target_top1) <= tolerance:
            break
        if top1 > target_top1:
            low = middle
        else:
            high = middle
    return best["distort_limit"], best["top1"], trace


def _rate_stats(result: MatchingResult, independent_max: float) -> dict[str, Any]:
    """The result's own summary plus the binomial std and the share above the independent max."""
    rates, mean = result.rates, result.mean
    return {"min": result.min, "max": result.max, "mean": round(mean, 4),
            "std": round(result.std, 4),
            "binomial_std": round(math.sqrt(mean * (1 - mean) / result.n), 4),
            "above_independent_max": round(sum(r > independent_max for r in rates) / len(rates), 4),
            "rates": [round(r, 4) for r in rates]}


def _csrp_spec(zoo: Path, csrp_spec: dict[str, Any] | None) -> dict[str, Any]:
    if csrp_spec is not None:
        return csrp_spec
    if (zoo / "csrp" / "config.json").exists():
        spec = load_config(zoo / "csrp").preprocessing
        if spec is not None and spec.get("name") == "csrp":
            return dict(spec)
    raise UserError(f"{zoo}: no csrp entry with CSRP preprocessing to copy the setting from; "
                    "give --sigma and --p")


@dataclass
class _Contender:
    """One row's suspect: a predictor behind a transform, with its top-1 draws."""

    label: str
    predictor: Any
    transform: torch.nn.Module
    top1: list[float]


def _check_settings(repeats: int, samples: int, acc_repeats: int, modes: Sequence[str]) -> None:
    for value, name in ((repeats, "repeats"), (samples, "samples"), (acc_repeats, "acc_repeats")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"{name} must be an integer >= 1, got {value!r}")
    if not modes or any(m not in DRAW_MODES for m in modes):
        raise UserError(f"draw modes must be among {', '.join(DRAW_MODES)}, got {list(modes)}")


def _built(spec: dict[str, Any], input_shape: list[int]) -> torch.nn.Module:
    module = as_transform(spec, input_shape)  # built once, checked to fit
    assert module is not None
    return module


def _data_free(predictor: Any, test: ImageData, csrp: torch.nn.Module,
               rdg: torch.nn.Module | None, num_cells: int, acc_repeats: int,
               seed: int) -> tuple[list[_Contender], dict[str, Any]]:
    """The model behind RDG (``rdg``, or matched to CSRP's top-1 when ``None``) and CSRP."""
    csrp_top1 = top1_draws(predictor.logits, test, csrp.spec(), acc_repeats, seed)
    search: list[dict[str, float]] = []
    if rdg is None:
        distort_limit, _, search = rdg_for_accuracy(
            predictor.logits, test, sum(csrp_top1) / len(csrp_top1), num_cells=num_cells,
            seed=seed)
        rdg = RDG(distort_limit, num_cells)
    contenders = [
        _Contender("RDG", predictor, rdg,
                   top1_draws(predictor.logits, test, rdg.spec(), acc_repeats, seed)),
        _Contender("CSRP only", predictor, csrp, csrp_top1)]
    return contenders, {"csrp": csrp.spec(), "rdg": rdg.spec(), "rdg_search": search}


def _from_entries(entries: Sequence[Entry], test: ImageData, dataset: str, acc_repeats: int,
                  seed: int) -> list[_Contender]:
    """Zoo entries, each behind its own preprocessing (e.g. the fine-tuned pirates)."""
    contenders = []
    for entry in entries:
        config = entry.config
        if config.preprocessing is None:
            raise UserError(f"{entry.path} has no preprocessing: nothing random to compare")
        if config.dataset != dataset:
            raise UserError(f"{entry.path} is a {config.dataset} model, not {dataset}")
        predictor = load_predictor(entry)
        contenders.append(_Contender(
            entry.name, predictor, _built(config.preprocessing, config.input_shape),
            top1_draws(predictor.logits, test, config.preprocessing, acc_repeats, seed)))
    return contenders


@dataclass
class _Zoo:
    """The entries a study reads, each loaded once."""

    model: Entry
    independents: list[Entry]
    entries: list[Entry]


def _load_zoo(zoo: Path, model: str, entries: Sequence[str] | None) -> _Zoo:
    names = set(list_entries(zoo))
    independents = sorted(e for e in names if e.startswith("indep-"))
    if model not in names or not independents:
        raise UserError(f"{zoo}: the study needs the entry {model!r} and indep-* entries")
    missing = [e for e in entries or () if e not in names]
    if missing:
        raise UserError(f"{zoo}: no entry {', '.join(map(repr, missing))}")
    loaded = _Zoo(Entry.load(zoo / model), [Entry.load(zoo / n) for n in independents],
                  [Entry.load(zoo / e) for e in entries or ()])
    if loaded.model.config.preprocessing is not None:
        raise UserError(f"{zoo / model} already has preprocessing; the study adds its own")
    return loaded


def _measure_rows(contenders: Sequence[_Contender], modes: Sequence[str],
                  sets: Sequence[FingerprintSet], independent_max: dict[str, float],
                  repeats: int, seed: int, progress: bool) -> list[dict[str, Any]]:
    """Every contender in every draw mode: ``repeats`` tests of every set."""
    rows: list[dict[str, Any]] = []
    cells = [(contender, mode) for contender in contenders for mode in modes]
    console = Console(stderr=True)
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True,
                  disable=not (progress and console.is_terminal)) as bar:
        task = bar.add_task("stability", total=len(cells) * len(sets))
        for contender, mode in cells:
            module = contender.transform
            transform = module if mode == "per-sample" else SharedDraw(module)
            stats = {}
            for fset in sets:
                result = matching_rates(contender.predictor, fset, transform, repeats, seed)
                stats[fset.method] = _rate_stats(result, independent_max[fset.method])
                bar.advance(task)
            top1 = contender.top1
            rows.append({"row": contender.label, "draw": mode, "transform": module.spec(),
                         "accuracy": round(sum(top1) / len(top1), 4),
                         "accuracy_draws": [round(t, 4) for t in top1], "rates": stats})
    return rows


def _independent_band(loaded: _Zoo, sets: Sequence[FingerprintSet], test: ImageData,
                      seed: int) -> dict[str, Any]:
    """The independent models' accuracy and per-method [min, max] matching rates."""
    methods = [s.method for s in sets]
    rates = [local_rates(entry, sets) for entry in loaded.independents]
    accuracy = [top1_draws(load_predictor(e).logits, test, None, 1, seed)[0]
                for e in loaded.independents]
    return {"models": [e.name for e in loaded.independents],
            "accuracy": [min(accuracy), max(accuracy)],
            "rates": {m: [min(r[i] for r in rates), max(r[i] for r in rates)]
                      for i, m in enumerate(methods)}}


def stability_study(zoo: Path, *, model: str = "target", csrp_spec: dict[str, Any] | None = None,
                    distort_limit: float | None = None, num_cells: int = 10,
                    entries: Sequence[str] | None = None,
                    repeats: int = DEFAULT_REPEATS, samples: int = DEFAULT_SAMPLES,
                    acc_repeats: int = DEFAULT_ACC_REPEATS, modes: Sequence[str] = DRAW_MODES,
                    seed: int = 0, data_root: str | None = None,
                    progress: bool = True) -> dict[str, Any]:
    """Run the study on ``zoo`` (see the module docstring); returns the JSON-ready report.

    By default the rows are ``model`` behind RDG and behind CSRP (the data-free pirate). With
    ``entries`` they are those zoo entries instead, each behind its own preprocessing (e.g.
    ``csrp-ft`` and ``rdg-ft-matched``, the data-limited pirates), and no search is run.
    """
    _check_settings(repeats, samples, acc_repeats, modes)
    loaded = _load_zoo(zoo, model, entries)
    config = loaded.model.config
    if not entries:  # refuse a bad setting before any work
        csrp = _built(_csrp_spec(zoo, csrp_spec), config.input_shape)
        rdg = None if distort_limit is None else _built(
            {"name": "rdg", "distort_limit": distort_limit, "num_cells": num_cells},
            config.input_shape)
    sets = load_sets([zoo / "fingerprints"])
    started = time.perf_counter()
    predictor = load_predictor(loaded.model)
    test = load_dataset(config.dataset, "test", data_root).take(samples)
    clean_top1 = top1_draws(predictor.logits, test, None, 1, seed)[0]
    if entries:
        contenders = _from_entries(loaded.entries, test, config.dataset, acc_repeats, seed)
        setting: dict[str, Any] = {"csrp": None, "rdg": None, "rdg_search": []}
    else:
        contenders, setting = _data_free(predictor, test, csrp, rdg, num_cells, acc_repeats,
                                         seed)
    methods = [s.method for s in sets]
    independent = _independent_band(loaded, sets, test, seed)
    independent_max = {m: independent["rates"][m][1] for m in methods}
    rows = _measure_rows(contenders, modes, sets, independent_max, repeats, seed, progress)
    return {
        "zoo": str(zoo), "model": model, "model_lineage": config.lineage.model_dump(),
        "entries": list(entries or []),
        "entry_lineage": {e.name: e.config.lineage.model_dump() for e in loaded.entries},
        "methods": methods,
        "fingerprints": [{"method": s.method, "file": s.name, "sha256": s.sha256, "n": s.n}
                         for s in sets], "repeats": repeats, "seed": seed,
        "modes": list(modes), "accuracy_samples": len(test), "accuracy_repeats": acc_repeats,
        "clean_accuracy": round(clean_top1, 4), **setting,
        "target": {"rates": dict(zip(methods, local_rates(loaded.model, sets), strict=True))},
        "independent": independent,
        "rows": rows, "seconds": round(time.perf_counter() - started, 1), "time": utc_now(),
        "code_version": code_version(),
    }


def _range(low: float, high: float) -> str:
    return f"[{low:.2f}, {high:.2f}]"


def _label(row: dict[str, Any]) -> str:
    spec = row["transform"]
    setting = (f"d = {spec['distort_limit']:.3g}" if spec["name"] == "rdg"
               else f"sigma = {spec['sigma']:g}, p = {spec['p']}")
    return f"{row['row']} ({setting}), {row['draw']} draws"


def to_markdown(report: dict[str, Any]) -> str:
    """The paper's Table 5 shape ([min, max] over the tests), then the spread's anatomy."""
    methods = report["methods"]
    head = "| row | ACC-top1 | " + " | ".join(methods) + " |"
    rule = "|---|---:|" + "---:|" * len(methods)
    independent = report["independent"]
    lines = [head, rule,
             f"| target | {report['clean_accuracy']:.2f} | "
             + " | ".join(f"{report['target']['rates'][m]:.2f}" for m in methods) + " |",
             f"| independent ({len(independent['models'])} models) | "
             f"{_range(*independent['accuracy'])} | "
             + " | ".join(_range(*independent["rates"][m]) for m in methods) + " |"]
    for row in report["rows"]:
        lines.append(f"| {_label(row)} | {row['accuracy']:.2f} | "
                     + " | ".join(_range(row["rates"][m]["min"], row["rates"][m]["max"])
                                  for m in methods) + " |")
    spread = [head.replace("ACC-top1", "what"), rule]
    for row in report["rows"]:
        for key, what in (("std", "std / binomial std"),
                          ("above_independent_max", "share of tests > independent max")):
            cells = []
            for m in methods:
                stats = row["rates"][m]
                cells.append(f"{stats['std']:.3f} / {stats['binomial_std']:.3f}" if key == "std"
                             else f"{stats[key]:.2f}")
            spread.append(f"| {_label(row)} | {what} | " + " | ".join(cells) + " |")
    return (f"Matching rate [min, max] over {report['repeats']} tests of each set; ACC-top1 on "
            f"the first {report['accuracy_samples']} test images (clean for the target and the "
            f"independents, the mean of {report['accuracy_repeats']} draws behind a "
            f"transform)\n\n" + "\n".join(lines)
            + "\n\nSpread of the per-test rates\n\n" + "\n".join(spread) + "\n")


def to_csv(report: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["row", "draw", "setting", "accuracy", "method", "min", "max", "mean", "std",
                     "binomial_std", "above_independent_max", "independent_max"])
    for row in report["rows"]:
        for m in report["methods"]:
            s = row["rates"][m]
            writer.writerow([row["row"], row["draw"], _label(row), row["accuracy"], m, s["min"],
                             s["max"], s["mean"], s["std"], s["binomial_std"],
                             s["above_independent_max"], report["independent"]["rates"][m][1]])
    return buffer.getvalue()


def plot(report: dict[str, Any]) -> bytes:
    """Per method: each row's [min, max] over the tests as a bar with its mean, on the grey band
    of the independent models' [min, max]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods, rows = report["methods"], report["rows"]
    figure, axes = plt.subplots(figsize=(10, 5.2))
    width = 0.8 / max(1, len(rows))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    shade_independent_band(axes, methods, report["independent"]["rates"])
    for i, row in enumerate(rows):
        xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(methods))]
        stats = [row["rates"][m] for m in methods]
        colour = colours[i % len(colours)]
        axes.vlines(xs, [s["min"] for s in stats], [s["max"] for s in stats], colors=colour,
                    linewidth=6, alpha=0.7, label=_label(row))
        axes.plot(xs, [s["mean"] for s in stats], "k_", markersize=8)
    axes.set_xticks(range(len(methods)), methods)
    axes.set_xlabel("fingerprinting method")
    axes.set_ylabel(f"matching rate, [min, max] over {report['repeats']} tests")
    axes.set_ylim(0, 1.05)
    if report.get("entries"):
        what = f"fine-tuned pirates {' vs '.join(report['entries'])}"
    else:
        rdg = report.get("rdg") or {}
        what = (f"{report['model']} behind CSRP and behind RDG "
                f"(d = {rdg.get('distort_limit', 0):.3g})")
    axes.set_title(f"Matching-rate spread over {report['repeats']} tests: {what}", fontsize=10)
    axes.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3)
    figure.tight_layout()
    return png_bytes(figure)


def write_outputs(report: dict[str, Any], out: Path) -> list[Path]:
    """``stability.json``, ``.md``, ``.csv`` and ``.png`` under ``out``, each atomically."""
    return write_report(out, "stability", report, to_markdown(report), to_csv(report), plot(report))
