"""Calibration: how well do *independent* models match each fingerprint set, and where does the
owner put the line between "independent" and "stolen"?

For every fingerprint set the matching rate of every independent model (same data and
architecture, another seed) is measured, in-process from a model repository or remotely over the
Open Inference Protocol. From these rates the calibration file records, per method:

- ``independent_max``: the paper's rule (an attack succeeds when the suspect's averaged matching
  rate stays below the best independent model);
- ``fitted_quantile``: a false-positive-controlled threshold, the ``1 - alpha`` quantile of a Beta
  distribution fitted to the independent rates by the method of moments (Watermark-Robustness-
  Toolbox fits a normal the same way; a Beta respects [0, 1]). Degenerate rate lists (fewer than
  two rates, zero variance such as all-zero or all-one rates, or over-dispersed rates that no
  Beta can match) fall back to a normal with a floor on sigma of one fingerprint's worth of
  matching rate (``1 / n``), and the file says so;
- ``threshold`` and ``threshold_method``: the one the verifier decides with (``rule``; by default
  the larger of the two, so a "stolen" verdict must beat both);
- the fit itself, from which :func:`p_value` gives P(independent rate >= observed) for any rate;
- ``null``: the logit-normal null the verdicts decide with (``verifier_client.verdict``: a
  Student-t predictive p-value, Shapiro-Wilk's check of the normal model) and ``rank_p_floor``,
  the smallest rank p-value ``1 / (n + 1)`` the n models allow.

The statistics are pure functions on lists of floats (:func:`fit_null`, :func:`thresholds_for`,
:func:`p_value`, :func:`empirical_p_value`) so they can be checked on hand-made numbers;
:func:`calibrate` does the measuring and :func:`write_calibration` the atomic write.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import stats

from models.atomic import write_json
from models.config import Entry, as_entry
from models.errors import UserError
from models.provenance import code_version, utc_now
from verifier_client.fingerprint_set import FingerprintSet
from verifier_client.protocol import Protocol, member_text

__all__ = [
    "CALIBRATION_FORMAT",
    "DEFAULT_ALPHA",
    "RULES",
    "EarlierCalibration",
    "IndependentSource",
    "NullFit",
    "calibrate",
    "calibration_entry",
    "empirical_p_value",
    "fit_null",
    "load_calibration",
    "p_value",
    "summarize_rates",
    "thresholds_for",
    "write_calibration",
]

CALIBRATION_FORMAT = "csrp-testbed/calibration/v1"
DEFAULT_ALPHA = 0.01
#: ``threshold`` is chosen by one of these rules.
RULES: tuple[str, ...] = ("conservative", "max", "fit")
Rule = Literal["conservative", "max", "fit"]
#: A calibration file larger than this is refused unread (100 models x 6 methods x 5 members
#: take about 200 KB).
MAX_CALIBRATION_BYTES = 64 * 1024 * 1024
#: Sigma floor of the normal fallback when the number of fingerprints is unknown.
DEFAULT_SIGMA_FLOOR = 0.01


# --------------------------------------------------------------------------------------------
# statistics on plain numbers
# --------------------------------------------------------------------------------------------


def _check_rates(rates: Sequence[float]) -> np.ndarray:
    array = np.asarray(list(rates), dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError("need at least one independent matching rate")
    if not np.all(np.isfinite(array)) or array.min() < 0.0 or array.max() > 1.0:
        raise ValueError(f"matching rates must lie in [0, 1]; got {array.tolist()}")
    return array


def summarize_rates(rates: Sequence[float]) -> dict[str, float]:
    """``min, max, mean, std`` (sample std, ddof=1; 0 for a single rate)."""
    array = _check_rates(rates)
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return {"min": float(array.min()), "max": float(array.max()), "mean": float(array.mean()),
            "std": std}


@dataclass(frozen=True)
class NullFit:
    """A distribution fitted to independent models' matching rates (the null hypothesis).

    ``family`` is ``"beta"`` (params ``a``, ``b``) or ``"normal"`` (params ``mu``, ``sigma``);
    ``note`` says why a fallback was taken (``None`` for a regular Beta fit).
    """

    family: Literal["beta", "normal"]
    params: dict[str, float]
    estimator: str
    note: str | None = None

    def _dist(self) -> Any:
        if self.family == "beta":
            return stats.beta(self.params["a"], self.params["b"])
        return stats.norm(self.params["mu"], self.params["sigma"])

    def quantile(self, q: float) -> float:
        """The ``q`` quantile, clipped to [0, 1]."""
        return float(min(1.0, max(0.0, self._dist().ppf(q))))

    def sf(self, x: float) -> float:
        """Survival function P(R >= x) (equal to P(R > x): both families are continuous)."""
        return float(self._dist().sf(x))

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "params": dict(self.params), "estimator": self.estimator,
                "note": self.note}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NullFit:
        family = data.get("family")
        params = data.get("params") or {}
        needed = ("a", "b") if family == "beta" else ("mu", "sigma")
        if family not in ("beta", "normal") or any(k not in params for k in needed):
            raise UserError(f"calibration fit is malformed: {data!r}")
        return cls(family=family, params={k: float(v) for k, v in params.items()},
                   estimator=str(data.get("estimator", "")), note=data.get("note"))


def fit_null(rates: Sequence[float], n_fingerprints: int | None = None) -> NullFit:
    """Fit a Beta distribution to ``rates`` by the method of moments; fall back to a normal.

    Method of moments with the sample mean ``m`` and sample variance ``v`` (ddof=1):
    ``k = m (1 - m) / v - 1``, ``a = m k``, ``b = (1 - m) k``; valid when ``0 < v < m (1 - m)``
    (it copes with rates of exactly 0 or 1, where a Beta likelihood would be -inf).
    Otherwise (fewer than two rates, zero variance, e.g. all-zero or all-one rates, or rates
    more spread than any Beta) the fit is ``Normal(m, max(s, floor))`` with
    ``floor = 1 / n_fingerprints`` (one fingerprint's worth of matching rate; 0.01 when unknown).
    """
    array = _check_rates(rates)
    floor = 1.0 / n_fingerprints if n_fingerprints else DEFAULT_SIGMA_FLOOR
    mean = float(array.mean())
    var = float(array.var(ddof=1)) if array.size > 1 else 0.0
    note: str | None = None
    if array.size < 2:
        note = "fewer than two independent rates"
    elif var <= 0.0:
        note = ("all independent rates are equal "
                f"({'all zero' if mean == 0 else 'all one' if mean == 1 else f'{mean:g}'})")
    elif var >= mean * (1.0 - mean):
        note = "independent rates are more spread than any Beta distribution allows"
    else:
        k = mean * (1.0 - mean) / var - 1.0
        return NullFit("beta", {"a": mean * k, "b": (1.0 - mean) * k}, "method-of-moments")
    sigma = max(math.sqrt(var), floor)
    note += f": normal fallback with sigma = max(sample std, floor {floor:g})"
    return NullFit("normal", {"mu": mean, "sigma": sigma}, "moments", note)


def thresholds_for(rates: Sequence[float], fit: NullFit, alpha: float = DEFAULT_ALPHA,
                   rule: Rule = "conservative") -> tuple[dict[str, float], float, str]:
    """``(thresholds, threshold, threshold_method)``.

    ``thresholds`` holds ``independent_max`` (the paper's rule) and ``fitted_quantile`` (the
    ``1 - alpha`` quantile of ``fit``). ``rule`` picks the decision threshold: ``"max"``,
    ``"fit"``, or ``"conservative"`` (the larger; ties go to ``independent_max``).
    ``threshold_method`` names what chose it, e.g. ``"beta-quantile(1-alpha=0.99)"``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}; got {rule!r}")
    independent_max = float(_check_rates(rates).max())
    fitted = fit.quantile(1.0 - alpha)
    fit_name = f"{fit.family}-quantile(1-alpha={1.0 - alpha:g})"
    use_fit = rule == "fit" or (rule == "conservative" and fitted > independent_max)
    threshold, method = (fitted, fit_name) if use_fit else (independent_max, "independent-max")
    return ({"independent_max": independent_max, "fitted_quantile": fitted}, threshold, method)


def p_value(fit: NullFit | dict[str, Any], observed_rate: float) -> float:
    """P(an independent model's rate >= ``observed_rate``) under ``fit`` (its survival function).

    Small means an independent model would hardly match this well: evidence of copying.
    """
    if isinstance(fit, dict):
        fit = NullFit.from_dict(fit)
    return fit.sf(float(observed_rate))


def empirical_p_value(rates: Sequence[float], observed_rate: float) -> float:
    """Distribution-free ``(1 + #{rate >= observed}) / (1 + n)``: never below ``1 / (n + 1)``."""
    array = _check_rates(rates)
    return float((1 + np.count_nonzero(array >= observed_rate)) / (1 + array.size))


def calibration_entry(method: str, rates: Sequence[float] | dict[str, Sequence[float]],
                      names: Sequence[str], *, n_fingerprints: int | None = None,
                      alpha: float = DEFAULT_ALPHA,
                      rule: Rule = "conservative") -> dict[str, Any]:
    """The statistics part of one method's calibration record (no file, no provenance).

    ``rates`` is one rate per model, or ``{member: rates}`` for negatives measured behind
    several fronts: then ``members`` records each member's rates and null, and the top-level
    fields (rates, fit, thresholds, null) are those of the least favourable member, the one
    with the highest mean logit rate."""
    by_member = {"none": list(rates)} if not isinstance(rates, dict) else \
        {k: list(v) for k, v in rates.items()}
    if any(len(names) != len(r) for r in by_member.values()):
        raise ValueError("one name per rate")
    n_fp = n_fingerprints or 100
    members = []
    for member, values in by_member.items():
        record: dict[str, Any] = {"front": member, "rates": [float(r) for r in values]}
        if len(values) >= 3:
            from verifier_client.verdict import LogitNormalNull

            record["null"] = LogitNormalNull.fit(values, n_fp).to_dict()
        members.append(record)
    from verifier_client.verdict import logit

    worst = max(members, key=lambda m: float(np.mean([logit(r, n_fp) for r in m["rates"]])))
    values = worst["rates"]
    fit = fit_null(values, n_fingerprints)
    thresholds, threshold, how = thresholds_for(values, fit, alpha, rule)
    entry = {"method": method, "independent_names": list(names),
             "independent_rates": list(values), **summarize_rates(values),
             "fit": fit.to_dict(), "thresholds": thresholds, "threshold": threshold,
             "threshold_method": how, "rule": rule, "alpha": alpha,
             "rank_p_floor": 1.0 / (len(values) + 1), "least_favourable": worst["front"],
             "members": members}
    if "null" in worst:
        entry["null"] = worst["null"]
    return entry


# --------------------------------------------------------------------------------------------
# measuring independent models
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndependentSource:
    """One independent model: a repository entry (``path``) or a remote model (``url`` +
    ``model``)."""

    name: str
    path: Path | None = None
    url: str | None = None
    model: str | None = None

    def describe(self) -> dict[str, Any]:
        if self.path is not None:
            return {"name": self.name, "source": "in-process", "path": str(self.path)}
        return {"name": self.name, "source": "remote", "url": self.url, "model": self.model}


def _model_seed(seed: int, name: str) -> int:
    """A seed per model: every negative sees its own front draws, as every suspect does (one
    shared stream would correlate the negatives with each other and not with the suspect)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


def local_rates(entry: Path | Entry, sets: Sequence[FingerprintSet], repeats: int = 1,
                seed: int = 0, *, front: dict[str, Any] | None = None,
                votes: int = 1) -> list[float]:
    """Matching rate of a repository entry (a folder or a loaded ``Entry``) on each set,
    in-process (``verifier_client.matching.match_outcomes``): behind ``front`` (a transform
    spec) when given, else through the entry's own preprocessing (built by
    ``models.transforms.build_transform``, as the server builds it), with ``votes`` per
    fingerprint, averaged over ``repeats`` seeded draws. A deterministic model is asked once."""
    from models.runtime import load_served_predictor
    from models.transforms import build_transform
    from verifier_client.matching import match_outcomes

    entry = as_entry(entry)
    path, config = entry.path, entry.config
    spec = front if front is not None else config.preprocessing
    try:
        transform = build_transform(spec)
        if transform is not None:
            transform.check_fits(config.input_shape)
    except ValueError as error:
        raise UserError(f"{path}: preprocessing {error}") from None
    predictor = load_served_predictor(entry)
    rates = []
    for fset in sets:
        if list(fset.images.shape[1:]) != list(config.input_shape):
            raise UserError(f"{fset.name}: images are {list(fset.images.shape[1:])} "
                            f"[C, H, W] but {path.name} takes {config.input_shape}")
        randomized = transform is not None and transform.randomized
        outcomes = match_outcomes(predictor, fset, transform, repeats if randomized else 1,
                                  seed, votes if randomized else 1)
        rates.append(float(outcomes.double().mean()))
    return rates


async def remote_rates(url: str, model: str, sets: Sequence[FingerprintSet], repeats: int,
                       client_options: dict[str, Any], votes: int = 1) -> list[float]:
    """Mean matching rate of the remote ``model`` on each set over ``repeats`` repeats of
    ``votes`` queries each (``OIPClient.repeat``: failed queries are left out, never scored)."""
    from verifier_client.oip_client import OIPClient
    from verifier_client.votes import set_outcomes

    async with OIPClient(url, **client_options) as client:
        await client.check_ready()
        meta = await client.model_metadata(model)
        prepared = [client.prepare(meta, s.queries, s.num_classes) for s in sets]
        results = await client.repeat(prepared, repeats * votes)
    rates = []
    for fset, result in zip(sets, results, strict=True):
        outcomes = set_outcomes(fset, result.answers, votes)
        if not len(outcomes):
            raise UserError(f"{model} at {url}: every query for {fset.name} failed")
        rates.append(float(np.mean(outcomes)))
    return rates


class _Cache:
    """Finished models of an interrupted calibration, one JSON line each in ``<out>.partial``
    (keyed by the protocol, the sets' sha256 and the model), so a rerun measures only the rest.
    """

    def __init__(self, path: Path | None, protocol: Protocol,
                 sets: Sequence[FingerprintSet]) -> None:
        self.path = path
        self.prefix = json.dumps([protocol.to_dict(), [s.sha256 for s in sets]], sort_keys=True)
        self.done: dict[str, dict[str, list[float]]] = {}
        if path is not None and path.is_file():
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                    self.done[record["key"]] = record["rates"]
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a stop: measured again

    def key(self, source: IndependentSource) -> str:
        text = self.prefix + json.dumps(source.describe(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def add(self, source: IndependentSource, rates: dict[str, list[float]]) -> None:
        self.done[self.key(source)] = rates
        if self.path is not None:
            with open(self.path, "a") as handle:
                handle.write(json.dumps({"key": self.key(source), "name": source.name,
                                         "rates": rates}) + "\n")

    def clear(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class EarlierCalibration:
    """Rates an earlier calibration file already holds, for ``calibrate --reuse``: growing a
    null population from 42 to 100 negatives then measures only the 58 new ones.

    Only a file measured under the same protocol on the same sets (by sha256) is accepted, and a
    model only when it is the same source (the same repository folder, or the same URL and
    model); its per-member rates are taken as they are. Each model's measurement is seeded by
    the protocol's seed and its name, so a fresh measurement with unchanged code gives the same
    numbers (tests/verifier_client/test_calibration.py checks this), and the new file records
    the earlier file's sha256 and code version beside the names it took.
    """

    path: Path
    sha256: str
    code_version: str
    rates: dict[str, dict[str, list[float]]]  # source key -> {member: [rate per set]}
    earlier: dict[str, Any] | None = None  # the file's own ``reused`` record, if it has one

    @classmethod
    def load(cls, path: Path, protocol: Protocol,
             sets: Sequence[FingerprintSet]) -> EarlierCalibration:
        raw = read_calibration_bytes(path)  # read once: the sha256 recorded is what was parsed
        document = parse_calibration(path, raw)
        if protocol_of(document).to_dict() != protocol.to_dict():
            raise UserError(f"{path}: measured under another protocol "
                            f"({protocol_of(document).describe()}), not "
                            f"{protocol.describe()}: nothing in it can be reused")
        entries = []
        for fset in sets:
            entry = document["methods"].get(fset.method)
            if not isinstance(entry, dict) or entry.get("set_sha256") != fset.sha256:
                raise UserError(f"{path}: no rates for this {fset.method!r} set (sha256 "
                                f"{fset.sha256[:12]}): nothing in it can be reused")
            entries.append(entry)
        members = protocol.member_names()
        try:
            names = [str(n) for n in entries[0]["independent_names"]]
            if len(set(names)) != len(names):
                raise ValueError("a model is named twice")
            by_model: dict[str, dict[str, list[float]]] = {
                name: {m: [] for m in members} for name in names}
            for entry in entries:
                if [str(n) for n in entry["independent_names"]] != names:
                    raise ValueError("methods list different models")
                recorded = {str(r["front"]): [float(x) for x in r["rates"]]
                            for r in entry["members"]}
                for member in members:
                    if len(recorded[member]) != len(names):
                        raise ValueError("one rate per model")
                    for name, rate in zip(names, recorded[member], strict=True):
                        if not 0.0 <= rate <= 1.0:
                            raise ValueError(f"rate {rate} outside [0, 1]")
                        by_model[name][member].append(rate)
            described = {str(d["name"]): dict(d) for d in document["independent"]}
            rates = {}
            for name in names:
                description = described[name]
                if description.get("path"):
                    description["path"] = str((path.parent / description["path"]).resolve())
                source = IndependentSource(
                    name, path=Path(description["path"]) if description.get("path") else None,
                    url=description.get("url"), model=description.get("model"))
                rates[_source_key(source)] = by_model[name]
        except (KeyError, TypeError, ValueError) as error:
            raise UserError(f"{path}: its rates cannot be read back ({error})") from None
        earlier = document.get("reused")
        return cls(path, hashlib.sha256(raw).hexdigest(),
                   str(document.get("code_version", "unknown")), rates,
                   earlier if isinstance(earlier, dict) else None)

    def take(self, source: IndependentSource) -> dict[str, list[float]] | None:
        return self.rates.get(_source_key(source))

    def record(self, names: Sequence[str]) -> dict[str, Any]:
        """What the new file took from this one; the chain of earlier files goes with it, so
        which code version measured each model survives any number of regrowths."""
        record: dict[str, Any] = {"file": str(self.path), "sha256": self.sha256,
                                  "code_version": self.code_version, "models": list(names)}
        if self.earlier is not None:
            record["earlier"] = self.earlier
        return record


def _source_key(source: IndependentSource) -> str:
    """Which model a source is, wherever the calibration file that names it lies."""
    if source.path is not None:
        return "path:" + str(source.path.resolve())
    return f"remote:{source.url} {source.model}"


def measure(source: IndependentSource, sets: Sequence[FingerprintSet], protocol: Protocol,
            client_options: dict[str, Any] | None = None) -> dict[str, list[float]]:
    """One negative's rate on every set under every member of ``protocol``:
    ``{member text: [rate per set]}``."""
    seed = _model_seed(protocol.seed, source.name)
    if source.path is not None:
        return {member_text(m): local_rates(source.path, sets, protocol.repeats, seed,
                                            front=m, votes=protocol.votes)
                for m in protocol.members}
    if protocol.randomized:
        raise UserError(f"{source.name}: a front is put in front of in-process negatives "
                        "(--repository, --independent); remote negatives are measured as the "
                        "server serves them")
    assert source.url is not None and source.model is not None
    rates = asyncio.run(remote_rates(source.url, source.model, sets, protocol.repeats,
                                     client_options or {}, protocol.votes))
    return {member_text(None): rates}


def calibrate(sets: Sequence[FingerprintSet], independents: Sequence[IndependentSource], *,
              repeats: int = 1, alpha: float = DEFAULT_ALPHA, rule: Rule = "conservative",
              seed: int = 0, client_options: dict[str, Any] | None = None,
              progress: Callable[[str], None] | None = None, front: str | None = None,
              votes: int = 1, partial: Path | None = None,
              reuse: Path | None = None) -> dict[str, Any]:
    """Measure every independent model on every set and build the calibration document.

    The negatives are queried under one :class:`~verifier_client.protocol.Protocol`: behind
    every member of ``front`` (``None``: as they are), with ``votes`` per fingerprint and the
    mean over ``repeats`` repeats (for randomized models; a deterministic one is asked once).
    ``client_options`` go to :class:`verifier_client.oip_client.OIPClient`. ``partial`` keeps
    finished models (see ``_Cache``) so an interrupted run resumes; ``reuse`` (an earlier
    calibration file, see :class:`EarlierCalibration`) gives the rates of models it already
    measured. Returns the JSON-ready document; write it with :func:`write_calibration`.
    """
    if len(independents) < 1:
        raise UserError("calibration needs at least one independent model")
    methods = [s.method for s in sets]
    duplicates = sorted({m for m in methods if methods.count(m) > 1})
    if duplicates:
        raise UserError(f"several fingerprint sets for method(s) {', '.join(duplicates)}: "
                        "calibrate them into separate files")
    names = [ind.name for ind in independents]
    if len(set(names)) != len(names):
        raise UserError(f"independent model names must be unique; got {names}")
    protocol = Protocol.make(front, votes, repeats, seed)
    cache = _Cache(partial, protocol, sets)
    earlier = EarlierCalibration.load(Path(reuse), protocol, sets) if reuse else None
    reused: list[str] = []
    # rates[member][method] = one rate per independent model, in ``names`` order
    rates: dict[str, dict[str, list[float]]] = {
        m: {s.method: [] for s in sets} for m in protocol.member_names()}
    for independent in independents:
        if progress:
            progress(independent.name)
        measured = cache.done.get(cache.key(independent))
        if measured is None and earlier is not None:
            measured = earlier.take(independent)
            if measured is not None:
                reused.append(independent.name)
        if measured is None:
            measured = measure(independent, sets, protocol, client_options)
            cache.add(independent, measured)
        for member, per_set in measured.items():
            for fset, rate in zip(sets, per_set, strict=True):
                rates[member][fset.method].append(rate)
    created, version = utc_now(), code_version()
    entries = {}
    for fset in sets:
        by_member = {m: rates[m][fset.method] for m in protocol.member_names()}
        entry = calibration_entry(fset.method, by_member, names, n_fingerprints=fset.n,
                                  alpha=alpha, rule=rule)
        entries[fset.method] = {
            "set_file": str(fset.path), "set_sha256": fset.sha256, "n": fset.n,
            "target": fset.metadata.get("target"), **entry,
            "code_version": version, "created": created}
    document = {"format": CALIBRATION_FORMAT, "created": created, "code_version": version,
                "alpha": alpha, "rule": rule, "repeats": repeats,
                "protocol": protocol.to_dict(),
                "independent": [ind.describe() for ind in independents], "methods": entries}
    if reused:
        assert earlier is not None
        document["reused"] = earlier.record(reused)
    cache.clear()
    return document


def _relative(path: str, start: Path) -> str:
    try:
        return os.path.relpath(Path(path).resolve(), start.resolve())
    except ValueError:  # another drive (Windows)
        return path


def write_calibration(path: str | Path, document: dict[str, Any]) -> Path:
    """Write the calibration document atomically (temporary file, then rename).

    File paths inside are made relative to the calibration file's folder, so a repository
    that ships both stays valid wherever it is checked out (sets are matched by sha256).
    """
    path = Path(path)
    document = copy.deepcopy(document)
    for entry in document.get("methods", {}).values():
        entry["set_file"] = _relative(entry["set_file"], path.parent)
    if isinstance(document.get("reused"), dict):
        document["reused"]["file"] = _relative(document["reused"]["file"], path.parent)
    for independent in document.get("independent", []):
        if independent.get("path"):
            independent["path"] = _relative(independent["path"], path.parent)
    write_json(path, document)
    return path


def load_calibration(path: str | Path) -> dict[str, Any]:
    """Read and sanity-check a calibration file."""
    return parse_calibration(Path(path), read_calibration_bytes(Path(path)))


def read_calibration_bytes(path: Path) -> bytes:
    """A calibration file's bytes (a regular file, size-capped), for :func:`parse_calibration`."""
    from models.files import read_regular_file

    return read_regular_file(path, MAX_CALIBRATION_BYTES, "calibration file")


def parse_calibration(path: Path, raw: bytes) -> dict[str, Any]:
    """Sanity-check the calibration document in ``raw`` (read from ``path``)."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as error:  # RecursionError: JSON nested too deep
        raise UserError(f"{path}: not a readable calibration file ({error})") from None
    if not isinstance(document, dict) or document.get("format") != CALIBRATION_FORMAT \
            or not isinstance(document.get("methods"), dict):
        raise UserError(f"{path}: not a calibration file (expected format "
                        f"{CALIBRATION_FORMAT!r}; make one with `python -m verifier_client "
                        "calibrate`)")
    Protocol.from_dict(document.get("protocol"))  # a malformed protocol is one line here
    return document


def protocol_of(calibration: dict[str, Any]) -> Protocol:
    """The query protocol a calibration document was measured under."""
    return Protocol.from_dict(calibration.get("protocol"))
