"""From outcomes to verdicts (``verifier_client.decision``) on hand-made calibrations: the least
favourable front decides, the combined test gates the per-method verdicts, ``auto`` falls back
below 1/alpha - 1 models, and a method that can never reach its Holm level says so."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from models.errors import UserError
from verifier_client.calibration import calibration_entry
from verifier_client.decision import decide_rows, method_row

N_FP = 100


@dataclass
class FakeSet:
    method: str
    n: int = N_FP
    sha256: str | None = None

    @property
    def name(self) -> str:
        return f"{self.method}.safetensors"


def _outcomes(rate: float, repeats: int = 4) -> np.ndarray:
    row = np.zeros(N_FP, dtype=bool)
    row[:round(rate * N_FP)] = True
    return np.tile(row, (repeats, 1))


def _entries(models: int, fronts: dict[str, float], methods=("ipguard", "vce"), seed=0):
    """Per method, negatives' rates around each front's centre (logit-normal, spread 0.3)."""
    rng = np.random.default_rng(seed)
    names = [f"m{i}" for i in range(models)]
    entries = {}
    for method in methods:
        by_front = {front: list(1 / (1 + np.exp(-(np.log(c / (1 - c)) +
                                                   0.3 * rng.normal(size=models)))))
                    for front, c in fronts.items()}
        entries[method] = {"n": N_FP, **calibration_entry(method, by_front, names,
                                                          n_fingerprints=N_FP)}
    return entries


def _decide(entries, rates: dict[str, float], decide_by="auto", alpha=0.01):
    rows = [method_row(FakeSet(m), entries[m], _outcomes(rates[m]), decide_by=decide_by)
            for m in entries]
    return rows, decide_rows(rows, alpha, decide_by, entries)


def test_the_least_favourable_front_decides():
    entries = _entries(30, {"csrp(sigma=1.1, p=1)": 0.2, "csrp(sigma=1.35, p=8)": 0.5})
    assert entries["ipguard"]["least_favourable"] == "csrp(sigma=1.35, p=8)"
    rows, _ = _decide(entries, {"ipguard": 0.45, "vce": 0.45}, decide_by="parametric")
    for row in rows:
        by_front = row["p_value_by_front"]
        assert row["p_value"] == max(by_front.values())  # the larger p decides
        assert by_front["csrp(sigma=1.1, p=1)"] < 0.01 < by_front["csrp(sigma=1.35, p=8)"]
        assert row["least_favourable"] == "csrp(sigma=1.35, p=8)"
        assert row["verdict"] == "not_proven"


def test_the_combined_test_decides_and_gates_the_methods():
    entries = _entries(120, {"none": 0.3})
    rows, overall = _decide(entries, {"ipguard": 0.99, "vce": 0.99})
    assert overall["decided_by"] == "combined" and overall["verdict"] == "stolen"
    assert overall["combined"]["p_value"] == pytest.approx(1 / 121)
    assert "exact rank test" in overall["guarantee"]
    assert all(row["verdict"] == "stolen" for row in rows)
    # an innocent-looking suspect: the gate stays closed
    rows, overall = _decide(entries, {"ipguard": 0.3, "vce": 0.28})
    assert overall["verdict"] == "not_proven" and overall["combined"]["p_value"] > 0.1


def test_a_method_the_gate_does_not_confirm_is_inconclusive():
    entries = _entries(120, {"none": 0.3})
    rows, overall = _decide(entries, {"ipguard": 0.95, "vce": 0.05})
    # ipguard alone passes Holm's parametric test, but the combined mean is not extreme
    assert overall["combined"]["p_value"] > 0.01
    assert rows[0]["p_at_low"] < 0.005
    assert rows[0]["verdict"] == "inconclusive" and overall["verdict"] == "inconclusive"


def test_auto_falls_back_to_parametric_below_99_models_and_says_so():
    entries = _entries(20, {"none": 0.3})
    _, overall = _decide(entries, {"ipguard": 0.99, "vce": 0.99})
    assert overall["decided_by"] == "parametric" and "needs 99 calibration models" in \
        overall["note"]
    with pytest.raises(UserError, match=r"combined rank test at alpha 0\.01 needs at least 99"):
        _decide(entries, {"ipguard": 0.99, "vce": 0.99}, decide_by="combined")


def test_a_method_that_cannot_reach_its_holm_level_says_so_in_words():
    entries = _entries(120, {"none": 0.3})
    # a null that is not logit-normal (two clusters): Shapiro-Wilk rejects it, rank decides
    names = [f"m{i}" for i in range(120)]
    rates = [0.05] * 60 + [0.6] * 60
    entries["vce"] = {"n": N_FP, **calibration_entry("vce", rates, names, n_fingerprints=N_FP)}
    entries["ipguard"] = {"n": N_FP, **calibration_entry("ipguard", rates, names,
                                                         n_fingerprints=N_FP)}
    rows, _ = _decide(entries, {"ipguard": 0.99, "vce": 0.99}, decide_by="rank",
                      alpha=0.2)
    assert all(row["decided_by"] == "rank" and row["reach"] is None for row in rows)
    rows, _ = _decide(entries, {"ipguard": 0.99, "vce": 0.99}, decide_by="auto")
    assert all(row["decided_by"] == "rank" for row in rows)
    first = min(rows, key=lambda r: r["holm_level"])
    assert first["reach"].startswith("cannot reach its Holm level 0.005: its null is not "
                                     "logit-normal")
    assert "1/(n+1) = 0.0083 with 120 models" in first["reach"]
