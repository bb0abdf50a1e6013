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
from models.errors import UserError
from models.provenance import code_version, utc_now
from models.repository import Entry, as_entry
from verifier_client.fingerprint_set import FingerprintSet

__all__ = [
    "CALIBRATION_FORMAT",
    "DEFAULT_ALPHA",
    "RULES",
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


def calibration_entry(method: str, rates: Sequence[float], names: Sequence[str], *,
                      n_fingerprints: int | None = None, alpha: float = DEFAULT_ALPHA,
                      rule: Rule = "conservative") -> dict[str, Any]:
    """The statistics part of one method's calibration record (no file, no provenance)."""
    if len(names) != len(rates):
        raise ValueError("one name per rate")
    fit = fit_null(rates, n_fingerprints)
    thresholds, threshold, how = thresholds_for(rates, fit, alpha, rule)
    entry = {"method": method, "independent_names": list(names),
             "independent_rates": [float(r) for r in rates], **summarize_rates(rates),
             "fit": fit.to_dict(), "thresholds": thresholds, "threshold": threshold,
             "threshold_method": how, "rule": rule, "alpha": alpha,
             "rank_p_floor": 1.0 / (len(rates) + 1)}
    if len(rates) >= 3:
        from verifier_client.verdict import LogitNormalNull

        entry["null"] = LogitNormalNull.fit(rates, n_fingerprints or 100).to_dict()
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


def local_rates(entry: Path | Entry, sets: Sequence[FingerprintSet], repeats: int = 1,
                seed: int = 0) -> list[float]:
    """Matching rate of a repository entry (a folder or a loaded ``Entry``) on each set,
    in-process (``verifier_client.matching.matching_rates``), through the entry's preprocessing
    when it has one (built by ``models.transforms.build_transform``, as the server builds it),
    averaged over ``repeats`` seeded draws."""
    from models.runtime import load_predictor
    from models.transforms import build_transform
    from verifier_client.matching import matching_rates

    entry = as_entry(entry)
    path, config = entry.path, entry.config
    try:
        transform = build_transform(config.preprocessing)
    except ValueError as error:
        raise UserError(f"{path}: preprocessing {error}") from None
    predictor = load_predictor(entry)
    rates = []
    for fset in sets:
        if list(fset.images.shape[1:]) != list(config.input_shape):
            raise UserError(f"{fset.name}: images are {list(fset.images.shape[1:])} "
                            f"[C, H, W] but {path.name} takes {config.input_shape}")
        result = matching_rates(predictor, fset, transform,
                                repeats if transform is not None else 1, seed)
        rates.append(result.mean)
    return rates


async def remote_rates(url: str, model: str, sets: Sequence[FingerprintSet], repeats: int,
                       client_options: dict[str, Any]) -> list[float]:
    """Mean matching rate of the remote ``model`` on each set over ``repeats`` queries
    (``OIPClient.repeat``: failed repeats are left out, never scored)."""
    from verifier_client.oip_client import OIPClient

    async with OIPClient(url, **client_options) as client:
        await client.check_ready()
        meta = await client.model_metadata(model)
        results = await client.repeat([client.prepare(meta, s.images) for s in sets], repeats)
    rates = []
    for fset, result in zip(sets, results, strict=True):
        if not result.answers:
            raise UserError(f"{model} at {url}: every query for {fset.name} failed")
        rates.append(float(np.mean(result.rates(fset.labels_array))))
    return rates


def calibrate(sets: Sequence[FingerprintSet], independents: Sequence[IndependentSource], *,
              repeats: int = 1, alpha: float = DEFAULT_ALPHA, rule: Rule = "conservative",
              seed: int = 0, client_options: dict[str, Any] | None = None,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure every independent model on every set and build the calibration document.

    ``repeats`` only matters for models with randomized preprocessing (remote ones are always
    queried ``repeats`` times and averaged). ``client_options`` go to
    :class:`verifier_client.oip_client.OIPClient`. Returns the JSON-ready document; write it
    with :func:`write_calibration`.
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
    rates: dict[str, list[float]] = {s.method: [] for s in sets}
    for independent in independents:
        if progress:
            progress(independent.name)
        if independent.path is not None:
            measured = local_rates(independent.path, sets, repeats, seed)
        else:
            assert independent.url is not None and independent.model is not None
            measured = asyncio.run(remote_rates(independent.url, independent.model, sets,
                                                 repeats, client_options or {}))
        for fset, rate in zip(sets, measured, strict=True):
            rates[fset.method].append(rate)
    created, version = utc_now(), code_version()
    entries = {}
    for fset in sets:
        entry = calibration_entry(fset.method, rates[fset.method], names, n_fingerprints=fset.n,
                                  alpha=alpha, rule=rule)
        entries[fset.method] = {
            "set_file": str(fset.path), "set_sha256": fset.sha256, "n": fset.n,
            "target": fset.metadata.get("target"), **entry,
            "code_version": version, "created": created}
    return {"format": CALIBRATION_FORMAT, "created": created, "code_version": version,
            "alpha": alpha, "rule": rule, "repeats": repeats,
            "independent": [ind.describe() for ind in independents], "methods": entries}


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
    for independent in document.get("independent", []):
        if independent.get("path"):
            independent["path"] = _relative(independent["path"], path.parent)
    write_json(path, document)
    return path


def load_calibration(path: str | Path) -> dict[str, Any]:
    """Read and sanity-check a calibration file."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: calibration file not found") from None
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: not a readable calibration file ({error})") from None
    if not isinstance(document, dict) or document.get("format") != CALIBRATION_FORMAT \
            or not isinstance(document.get("methods"), dict):
        raise UserError(f"{path}: not a calibration file (expected format "
                        f"{CALIBRATION_FORMAT!r}; make one with `python -m verifier_client "
                        "calibrate`)")
    return document
