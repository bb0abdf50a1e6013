"""Calibration statistics on hand-made numbers, the file format, and in-process measuring."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from models.errors import UserError
from verifier_client.calibration import (
    CALIBRATION_FORMAT,
    IndependentSource,
    NullFit,
    calibrate,
    calibration_entry,
    empirical_p_value,
    fit_null,
    load_calibration,
    p_value,
    summarize_rates,
    thresholds_for,
    write_calibration,
)
from verifier_client.fingerprint_set import FingerprintSet, load_sets
from verifier_client.verification import calibration_for_sets, summarize_method


def binomial_cdf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def beta_sf_by_hand(a: int, b: int, x: float) -> float:
    """P(Beta(a, b) > x) = P(Binomial(a + b - 1, x) <= a - 1) for integer a, b."""
    return binomial_cdf(a - 1, a + b - 1, x)


# ---------------------------------------------------------------------------- pure statistics


def test_summary_uses_sample_std() -> None:
    assert summarize_rates([0.1, 0.2, 0.3]) == pytest.approx(
        {"min": 0.1, "max": 0.3, "mean": 0.2, "std": 0.1})
    assert summarize_rates([0.4])["std"] == 0.0


def test_beta_method_of_moments_by_hand() -> None:
    # mean 0.2, sample variance 0.01: k = 0.2 * 0.8 / 0.01 - 1 = 15, a = 3, b = 12
    fit = fit_null([0.1, 0.2, 0.3])
    assert fit.family == "beta" and fit.note is None
    assert fit.params == pytest.approx({"a": 3.0, "b": 12.0})
    assert p_value(fit, 0.5) == pytest.approx(106 / 16384)  # (1 + 14 + 91) / 2**14
    assert p_value(fit, 0.25) == pytest.approx(beta_sf_by_hand(3, 12, 0.25))


def test_fitted_threshold_is_the_one_minus_alpha_quantile() -> None:
    rates = [0.1, 0.2, 0.3]
    fit = fit_null(rates)
    thresholds, threshold, how = thresholds_for(rates, fit, alpha=0.01)
    q = thresholds["fitted_quantile"]
    assert beta_sf_by_hand(3, 12, q) == pytest.approx(0.01, abs=1e-9)
    assert thresholds["independent_max"] == 0.3
    assert 0.3 < q < 0.5
    assert (threshold, how) == (q, "beta-quantile(1-alpha=0.99)")  # conservative: the larger
    assert thresholds_for(rates, fit, 0.01, "max")[1:] == (0.3, "independent-max")
    assert thresholds_for(rates, fit, 0.01, "fit")[1] == q
    # a looser alpha gives a lower threshold
    assert thresholds_for(rates, fit, 0.2)[0]["fitted_quantile"] < q


def test_conservative_keeps_the_max_when_it_is_larger() -> None:
    # tightly clustered rates with one outlier: the outlier max can exceed a lenient quantile
    rates = [0.5, 0.5, 0.51, 0.49, 0.9]
    fit = fit_null(rates)
    _, threshold, how = thresholds_for(rates, fit, alpha=0.4)
    assert (threshold, how) == (0.9, "independent-max")


def test_all_zero_rates_fall_back_to_a_normal_with_a_floor() -> None:
    fit = fit_null([0.0, 0.0, 0.0], n_fingerprints=100)
    assert fit.family == "normal" and fit.params == {"mu": 0.0, "sigma": 0.01}
    assert "all zero" in fit.note and "floor 0.01" in fit.note
    thresholds, threshold, how = thresholds_for([0.0, 0.0, 0.0], fit, alpha=0.01)
    assert threshold == pytest.approx(2.3263478740 * 0.01)
    assert how == "normal-quantile(1-alpha=0.99)"
    assert thresholds["independent_max"] == 0.0
    assert p_value(fit, 0.05) < 1e-6


def test_all_one_rates_make_stolen_impossible() -> None:
    rates = [1.0, 1.0]
    fit = fit_null(rates, n_fingerprints=50)
    assert fit.family == "normal" and "all one" in fit.note
    assert fit.params["sigma"] == pytest.approx(0.02)
    _, threshold, _ = thresholds_for(rates, fit)
    assert threshold == 1.0  # clipped: no rate can be above it, the set cannot tell
    assert p_value(fit, 1.0) == pytest.approx(0.5)


def test_zero_variance_inside_the_interval_and_single_rate() -> None:
    fit = fit_null([0.3, 0.3, 0.3])
    assert fit.family == "normal" and fit.params == {"mu": 0.3, "sigma": 0.01}
    assert "equal (0.3)" in fit.note
    single = fit_null([0.42], n_fingerprints=20)
    assert single.family == "normal" and single.params == {"mu": 0.42, "sigma": 0.05}
    assert "fewer than two" in single.note


def test_over_dispersed_rates_fall_back_to_normal() -> None:
    fit = fit_null([0.0, 1.0])  # variance 0.5 > mean (1 - mean) = 0.25: no Beta fits
    assert fit.family == "normal" and "more spread" in fit.note
    assert fit.params["sigma"] == pytest.approx(math.sqrt(0.5))


def test_rates_at_the_boundary_still_fit_a_beta() -> None:
    fit = fit_null([0.0, 0.1, 0.2])  # zeros break the Beta likelihood, not its moments
    assert fit.family == "beta"
    assert fit.params == pytest.approx({"a": 0.1 * 8, "b": 0.9 * 8})


def test_empirical_p_value() -> None:
    assert empirical_p_value([0.1, 0.2, 0.3], 0.25) == pytest.approx(2 / 4)
    assert empirical_p_value([0.1, 0.2, 0.3], 0.9) == pytest.approx(1 / 4)
    assert empirical_p_value([0.1, 0.2, 0.3], 0.1) == pytest.approx(1.0)


def test_bad_numbers_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        fit_null([])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        fit_null([0.2, 1.5])
    with pytest.raises(ValueError, match="alpha"):
        thresholds_for([0.1, 0.2], fit_null([0.1, 0.2]), alpha=1.0)
    with pytest.raises(ValueError, match="rule"):
        thresholds_for([0.1, 0.2], fit_null([0.1, 0.2]), rule="median")  # type: ignore[arg-type]


def test_fit_round_trips_through_json() -> None:
    fit = fit_null([0.1, 0.2, 0.3])
    again = NullFit.from_dict(json.loads(json.dumps(fit.to_dict())))
    assert again == fit
    assert p_value(fit.to_dict(), 0.4) == pytest.approx(p_value(fit, 0.4))
    with pytest.raises(UserError, match="malformed"):
        NullFit.from_dict({"family": "beta", "params": {"a": 1.0}})


def test_entry_and_verdict_from_hand_made_rates() -> None:
    rates = [0.03, 0.08, 0.14, 0.05, 0.10]
    entry = calibration_entry("ipguard", rates, ["i1", "i2", "i3", "i4", "i5"],
                              n_fingerprints=100, alpha=0.01)
    assert entry["min"] == 0.03 and entry["max"] == 0.14
    assert entry["fit"]["family"] == "beta" and entry["alpha"] == 0.01
    assert entry["threshold"] >= 0.14
    assert entry["null"]["n"] == 5 and entry["rank_p_floor"] == pytest.approx(1 / 6)
    entry.update(set_sha256="abc", n=100)

    class FakeSet:
        method, n, path, sha256, name = ("ipguard", 100, Path("ipguard.safetensors"), "abc",
                                         "ipguard.safetensors")

    stolen = summarize_method(FakeSet(), entry, [0.97, 1.0, 0.99], [])  # type: ignore[arg-type]
    assert stolen["verdict"] == "stolen" and stolen["repeats"] == 3
    assert stolen["mr_mean"] == pytest.approx(0.9866667) and stolen["p_value"] < 1e-3
    assert stolen["p_value_empirical"] == pytest.approx(1 / 6)  # the rank p-value's floor
    below = summarize_method(FakeSet(), entry, [0.05, 0.09], ["HTTP 503"])  # type: ignore[arg-type]
    assert below["verdict"] == "not_proven" and below["repeats_failed"] == 1
    assert below["p_value"] > 0.05
    # the paper's rule from the same calibration: 0.14 < 0.2, so "stolen" under "max" (the
    # legacy threshold verdict); the calibrated decision does not accuse on so little
    mid = summarize_method(FakeSet(), entry, [0.2], [], rule="max")  # type: ignore[arg-type]
    assert mid["threshold"] == 0.14 and mid["threshold_verdict"] == "stolen"
    assert mid["verdict"] != "stolen"


# ---------------------------------------------------------------------------- files


def make_set(path: Path, images: torch.Tensor, labels: torch.Tensor, method: str,
             target: str = "target") -> Path:
    """A fingerprint set file from uint8-grid images (what the fingerprint module writes)."""
    metadata = {"method": method, "parameters": {}, "target": {"name": target}, "seed": 0,
                "num_classes": 10,
                "code_version": "test", "candidates_tried": len(labels), "created": "now"}
    fset = FingerprintSet(images.to(torch.float32), labels.to(torch.int64), metadata)
    # A safetensors header of 0x?80 bytes makes the file start with 0x80, which today's
    # fingerprint_set refuses as a pickle; pad the metadata until it does not.
    while fset.to_bytes()[:1] == b"\x80":
        fset.metadata["padding"] = fset.metadata.get("padding", "") + "-" * 8
    fset.save(path)
    return path


def test_calibrate_in_process_writes_every_field(tiny_repo: Path, fmnist_test,
                                                 tmp_path: Path) -> None:
    from models.runtime import load_predictor

    images = fmnist_test.floats(slice(0, 40))
    labels = load_predictor(tiny_repo / "target").predict(images)
    make_set(tmp_path / "sets" / "a.safetensors", images[:20], labels[:20], "clean-a")
    make_set(tmp_path / "sets" / "b.safetensors", images[20:], labels[20:], "clean-b")
    sets = load_sets([tmp_path / "sets"])
    assert [s.method for s in sets] == ["clean-a", "clean-b"]
    sources = [IndependentSource(n, path=tiny_repo / n) for n in ("indep-1", "indep-2")]
    document = calibrate(sets, sources, alpha=0.05)
    out = write_calibration(tmp_path / "calibration.json", document)
    loaded = load_calibration(out)
    assert loaded["format"] == CALIBRATION_FORMAT
    entry = loaded["methods"]["clean-a"]
    for key in ("set_file", "set_sha256", "independent_names", "independent_rates", "min", "max",
                "mean", "std", "fit", "threshold", "threshold_method", "alpha", "code_version",
                "created"):
        assert key in entry, key
    assert entry["independent_names"] == ["indep-1", "indep-2"]
    for name, rate in zip(entry["independent_names"], entry["independent_rates"], strict=True):
        predicted = load_predictor(tiny_repo / name).predict(images[:20])
        assert rate == pytest.approx(float((predicted == labels[:20]).float().mean()))
    assert entry["set_sha256"] == sets[0].sha256 and entry["alpha"] == 0.05
    assert calibration_for_sets(sets, loaded)["clean-b"] is loaded["methods"]["clean-b"]


def test_calibration_for_other_sets_is_refused(tmp_path: Path) -> None:
    images = torch.zeros(4, 1, 28, 28)
    make_set(tmp_path / "x.safetensors", images, torch.arange(4), "ipguard")
    sets = load_sets([tmp_path / "x.safetensors"])
    calibration = {"methods": {"ipguard": {"set_sha256": "0" * 64}}}
    with pytest.raises(UserError, match="made for another 'ipguard' set"):
        calibration_for_sets(sets, calibration)
    with pytest.raises(UserError, match="no calibration for method 'ipguard'"):
        calibration_for_sets(sets, {"methods": {"cae": {}}})


def test_bad_calibration_and_set_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_calibration(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text('{"methods": {}}')
    with pytest.raises(UserError, match="not a calibration file"):
        load_calibration(tmp_path / "other.json")
    with pytest.raises(UserError, match="no such fingerprint set"):
        load_sets([tmp_path / "nope.safetensors"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"no \*\.safetensors"):
        load_sets([tmp_path / "empty"])


def test_calibrate_cli_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from verifier_client.cli import main

    make_set(tmp_path / "s.safetensors", torch.zeros(2, 1, 28, 28), torch.arange(2), "m")
    code = main(["calibrate", "--fingerprints", str(tmp_path / "s.safetensors"),
                 "--out", str(tmp_path / "c.json")])
    assert code == 2 and not (tmp_path / "c.json").exists()
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: give independent models") and "\n" not in err


def test_local_rates_apply_the_entry_preprocessing(tiny_repo: Path, fmnist_test,
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """An independent model with CSRP in its config is measured through CSRP, seeded draws
    averaged over ``repeats``."""
    import shutil

    from models.atomic import write_json
    from models.repository import load_config
    from models.runtime import load_predictor
    from verifier_client.calibration import local_rates

    monkeypatch.setenv("CSRP_COMPILE", "0")
    entry = tmp_path / "indep-csrp"
    shutil.copytree(tiny_repo / "indep-1", entry)
    config = load_config(entry).model_copy(update={
        "name": "indep-csrp", "preprocessing": {"name": "csrp", "sigma": 1.16, "p": 3}})
    write_json(entry / "config.json", json.loads(config.model_dump_json()))
    images = fmnist_test.floats(slice(0, 60))
    make_set(tmp_path / "s.safetensors", images,
             load_predictor(tiny_repo / "target").predict(images), "m")
    sets = load_sets([tmp_path / "s.safetensors"])
    plain = local_rates(tiny_repo / "indep-1", sets)
    first = local_rates(entry, sets, repeats=4, seed=1)
    assert first == local_rates(entry, sets, repeats=4, seed=1)  # seeded: replays exactly
    assert first != plain and 0.0 < first[0] < 1.0
    assert first[0] * 60 * 4 == pytest.approx(round(first[0] * 60 * 4))  # mean of 4 draws


# ------------------------------------------------------------- growing a population, resuming

FAMILY = "csrp(sigma=1.1..1.35, p=1..8)"


def _two_sets(tiny_repo: Path, fmnist_test, folder: Path) -> list[FingerprintSet]:
    from models.runtime import load_predictor

    images = fmnist_test.floats(slice(100, 130))
    labels = load_predictor(tiny_repo / "target").predict(images)
    make_set(folder / "a.safetensors", images[:15], labels[:15], "clean-a")
    make_set(folder / "b.safetensors", images[15:], labels[15:], "clean-b")
    return load_sets([folder])


def _statistics(document: dict) -> dict:
    """A calibration's numbers, without when and by which code it was written."""
    return {method: {k: v for k, v in entry.items() if k not in ("created", "code_version")}
            for method, entry in document["methods"].items()}


def _measured_names(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record which models ``calibrate`` measures (the real measurement still runs)."""
    import verifier_client.calibration as calibration

    names: list[str] = []
    real = calibration.measure

    def spy(source, *args, **kwargs):
        names.append(source.name)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(calibration, "measure", spy)
    return names


def test_reuse_measures_only_new_models_and_equals_a_fresh_calibration(
        tiny_repo: Path, fmnist_test, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Growing the null population behind a front: the earlier file's model is not measured
    again, and the grown file holds exactly the numbers a calibration from scratch gives."""
    monkeypatch.setenv("CSRP_COMPILE", "0")
    sets = _two_sets(tiny_repo, fmnist_test, tmp_path / "sets")
    sources = [IndependentSource(n, path=tiny_repo / n) for n in ("indep-1", "indep-2")]
    protocol = {"front": FAMILY, "votes": 3, "repeats": 2}
    (tmp_path / "earlier").mkdir()
    earlier = write_calibration(tmp_path / "earlier" / "calibration.json",
                                calibrate(sets, sources[:1], **protocol))
    measured = _measured_names(monkeypatch)
    grown = calibrate(sets, sources, reuse=earlier, **protocol)
    assert measured == ["indep-2"]
    assert grown["reused"]["models"] == ["indep-1"]
    assert grown["reused"]["code_version"] == load_calibration(earlier)["code_version"]
    fresh = calibrate(sets, sources, **protocol)
    assert "reused" not in fresh and measured == ["indep-2", "indep-1", "indep-2"]
    assert _statistics(grown) == _statistics(fresh)
    out = write_calibration(tmp_path / "grown.json", grown)
    assert load_calibration(out)["reused"]["file"] == "earlier/calibration.json"


def test_reuse_refuses_another_protocol_other_sets_and_bad_rates(
        tiny_repo: Path, fmnist_test, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSRP_COMPILE", "0")
    sets = _two_sets(tiny_repo, fmnist_test, tmp_path / "sets")
    source = [IndependentSource("indep-1", path=tiny_repo / "indep-1")]
    earlier = write_calibration(tmp_path / "plain.json", calibrate(sets, source))
    with pytest.raises(UserError, match="measured under another protocol"):
        calibrate(sets, source, front=FAMILY, votes=3, repeats=2, reuse=earlier)
    make_set(tmp_path / "other" / "a.safetensors", torch.zeros(3, 1, 28, 28),
             torch.arange(3), "clean-a")
    with pytest.raises(UserError, match="no rates for this 'clean-a' set"):
        calibrate(load_sets([tmp_path / "other"]), source, reuse=earlier)
    document = json.loads(earlier.read_text())
    document["methods"]["clean-b"]["members"][0]["rates"] = [1.5]
    (tmp_path / "tampered.json").write_text(json.dumps(document))
    with pytest.raises(UserError, match=r"rates cannot be read back \(rate 1.5 outside"):
        calibrate(sets, source, reuse=tmp_path / "tampered.json")
    document = json.loads(earlier.read_text())
    for entry in document["methods"].values():
        entry["independent_names"] *= 2
        entry["members"][0]["rates"] *= 2
    (tmp_path / "twice.json").write_text(json.dumps(document))
    with pytest.raises(UserError, match="a model is named twice"):
        calibrate(sets, source, reuse=tmp_path / "twice.json")


def test_an_interrupted_calibration_resumes_from_its_partial_file(
        tiny_repo: Path, fmnist_test, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import verifier_client.calibration as calibration

    sets = _two_sets(tiny_repo, fmnist_test, tmp_path / "sets")
    sources = [IndependentSource(n, path=tiny_repo / n) for n in ("indep-1", "indep-2")]
    partial = tmp_path / "c.json.partial"
    real = calibration.measure

    def stop_at_the_second(source, *args, **kwargs):
        if source.name == "indep-2":
            raise KeyboardInterrupt
        return real(source, *args, **kwargs)

    monkeypatch.setattr(calibration, "measure", stop_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        calibrate(sets, sources, partial=partial)
    assert [json.loads(line)["name"] for line in partial.read_text().splitlines()] == ["indep-1"]
    monkeypatch.setattr(calibration, "measure", real)
    measured = _measured_names(monkeypatch)
    resumed = calibrate(sets, sources, partial=partial)
    assert measured == ["indep-2"] and not partial.exists()
    assert _statistics(resumed) == _statistics(calibrate(sets, sources))


def test_calibrate_cli_reuse_of_a_bad_file_is_one_line(tiny_repo: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    from verifier_client.cli import main

    make_set(tmp_path / "s.safetensors", torch.zeros(2, 1, 28, 28), torch.arange(2), "m")
    (tmp_path / "earlier.json").write_text('{"format": "something else"}')
    for reuse in ("missing.json", "earlier.json"):
        code = main(["calibrate", "--fingerprints", str(tmp_path / "s.safetensors"),
                     "--independent", str(tiny_repo / "indep-1"),
                     "--reuse", str(tmp_path / reuse), "--out", str(tmp_path / "c.json")])
        assert code == 2 and not (tmp_path / "c.json").exists()
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and reuse in err and "\n" not in err


def test_a_second_growth_keeps_the_first_ones_record(
        tiny_repo: Path, fmnist_test, tmp_path: Path) -> None:
    """Grown twice, the file still says which earlier file (and code version) each model came
    from: the second growth's record carries the first's, instead of claiming every model was
    taken from the previous version of the file."""
    sets = _two_sets(tiny_repo, fmnist_test, tmp_path / "sets")
    sources = [IndependentSource(n, path=tiny_repo / n) for n in ("indep-1", "indep-2")]
    first = write_calibration(tmp_path / "first.json", calibrate(sets, sources[:1]))
    second = write_calibration(tmp_path / "second.json",
                               calibrate(sets, sources, reuse=first))
    third = calibrate(sets, sources, reuse=second)
    assert third["reused"]["models"] == ["indep-1", "indep-2"]
    assert third["reused"]["earlier"]["models"] == ["indep-1"]
    assert third["reused"]["earlier"]["file"] == "first.json"
    assert "earlier" not in third["reused"]["earlier"]


def test_calibrate_cli_leaves_a_file_that_would_gain_nothing_as_it_is(
        tiny_repo: Path, fmnist_test, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`make recalibrate` run again (every model already in the file) must not rewrite the
    file: a rewrite would replace its record of what was measured when."""
    from verifier_client.cli import main

    _two_sets(tiny_repo, fmnist_test, tmp_path / "sets")
    out = tmp_path / "c.json"
    args = ["calibrate", "--fingerprints", str(tmp_path / "sets"),
            "--independent", str(tiny_repo / "indep-1"), "--out", str(out)]
    assert main(args) == 0
    grown = [*args[:4], f"{tiny_repo / 'indep-1'},{tiny_repo / 'indep-2'}",
             "--reuse", str(out), "--out", str(out)]
    assert main(grown) == 0
    written = out.read_bytes()
    assert json.loads(written)["reused"]["models"] == ["indep-1"]
    capsys.readouterr()
    assert main(grown) == 0
    assert out.read_bytes() == written
    assert "left as it is" in capsys.readouterr().out


def test_calibrate_prints_rank_when_any_front_rejects_the_logit_normal_null(
        tiny_repo: Path, fmnist_test, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """verify decides a method by rank when the null fails Shapiro-Wilk behind any front of
    the family; calibrate's table must say so, not only look at the least favourable front
    (it said "parametric" for CAE-EOT, which verify decided by rank)."""
    from verifier_client.commands.calibrate import print_calibration

    sets = _two_sets(tiny_repo, fmnist_test, tmp_path / "sets")
    sources = [IndependentSource(n, path=tiny_repo / n) for n in ("indep-1", "indep-2")]
    document = calibrate(sets, sources, front=FAMILY, votes=3, repeats=2)
    entry = document["methods"]["clean-a"]
    fitted = {"mean_logit": 0.5, "sd_logit": 0.3, "n": 30, "n_fingerprints": 15,
              "shapiro_p": 0.9}
    entry["null"] = dict(fitted)  # two models fit no null: give every front one that passes,
    for member in entry["members"]:
        member["null"] = dict(fitted)
    entry["members"][-1]["null"]["shapiro_p"] = 0.012  # and one front where it fails
    capsys.readouterr()
    print_calibration(document)
    row = next(line for line in capsys.readouterr().out.splitlines() if "clean-a" in line)
    assert "rank" in row and "0.012" in row and "parametric" not in row
