"""``verify`` end to end against the real server (``python -m server`` on 127.0.0.1).

Fingerprint sets here are clean test images labelled by the tiny target (on the 8-bit grid), so
they are quick to make; the pipeline does not care how a set was generated.
"""

from __future__ import annotations

import json
import math
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from models.errors import UserError
from models.local_server import LocalServer, free_port
from verifier_client.calibration import (
    calibration_entry,
    load_calibration,
)
from verifier_client.cli import main
from verifier_client.fingerprint_set import load_sets
from verifier_client.oip_client import RetryPolicy
from verifier_client.verification import VerifyOptions, verify

from .test_calibration import make_set

REPORT_FIELDS = ("method", "n", "repeats", "repeats_failed", "mr_mean", "mr_std", "mr_min",
                 "mr_max", "independent_min", "independent_max", "threshold", "threshold_method",
                 "verdict", "p_value")


@pytest.fixture(scope="module")
def served_repo(tiny_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``plain-copy`` (the target, stolen as is) and ``indep-2`` (an independent model)."""
    repo = tmp_path_factory.mktemp("served")
    shutil.copytree(tiny_repo / "target", repo / "plain-copy")
    shutil.copytree(tiny_repo / "indep-2", repo / "indep-2")
    return repo


@pytest.fixture(scope="module")
def server(served_repo: Path) -> Any:
    running = LocalServer(served_repo, "--seed", "0").start()
    yield running
    running.stop()


def run_verify(url: str, model: str, owner: dict[str, Path], **kwargs: Any) -> dict[str, Any]:
    return verify(url, model, load_sets([owner["sets"]]),
                  load_calibration(owner["calibration"]), **kwargs)


def test_plain_copy_is_stolen_for_every_method(server: LocalServer,
                                               owner: dict[str, Path]) -> None:
    report = run_verify(server.url, "plain-copy", owner, repeats=4, batch_size=20)
    assert [row["method"] for row in report["methods"]] == ["cae", "ipguard"]
    for row in report["methods"]:
        assert row["verdict"] == "stolen"
        assert row["mr_mean"] == 1.0 and row["repeats"] == 4 and row["repeats_failed"] == 0
        assert row["p_value"] < 1e-3
    assert report["protocol"] == "binary" and report["queries"] == 2 * 4 * 50


def test_independent_model_is_not_proven(server: LocalServer,
                                         owner: dict[str, Path]) -> None:
    report = run_verify(server.url, "indep-2", owner, repeats=3)
    for row in report["methods"]:
        assert row["verdict"] == "not_proven"
        assert row["mr_mean"] <= row["independent_max"] <= row["threshold"]


def test_cli_writes_the_design_fields(server: LocalServer, owner: dict[str, Path],
                                      tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "report.json"
    code = main(["verify", "--url", server.url, "--model", "plain-copy", "--fingerprints",
                 str(owner["sets"]), "--calibration", str(owner["calibration"]), "--repeats",
                 "2", "--protocol", "json", "--json", str(out), "--no-progress"])
    assert code == 0
    report = json.loads(out.read_text())
    assert {"url", "model", "time", "code_version", "client_seconds"} <= set(report)
    assert report["protocol"] == "json"
    for row in report["methods"]:
        assert set(REPORT_FIELDS) <= set(row)
    printed = capsys.readouterr().out
    assert "stolen" in printed and "plain-copy" in printed


def cli_error(args: list[str], capsys: pytest.CaptureFixture) -> str:
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err, err
    return err


def test_bad_input_is_one_line_and_no_json(server: LocalServer, owner: dict[str, Path],
                                           tmp_path: Path, capsys: pytest.CaptureFixture,
                                           tiny_repo: Path) -> None:
    out = tmp_path / "report.json"
    base = ["verify", "--fingerprints", str(owner["sets"]), "--calibration",
            str(owner["calibration"]), "--repeats", "2", "--json", str(out), "--no-progress",
            "--retries", "1", "--backoff", "0.01"]
    assert "model 'nope' not found" in cli_error(
        [*base, "--url", server.url, "--model", "nope"], capsys)
    assert "cannot reach an inference server" in cli_error(
        [*base, "--url", f"http://127.0.0.1:{free_port()}", "--model", "plain-copy"], capsys)

    # the calibration was made for other sets: same method, other bytes
    other = tmp_path / "other"
    make_set(other / "ipguard.safetensors", torch.zeros(3, 1, 28, 28), torch.zeros(3).long(),
             "ipguard", target="the-target")
    err = cli_error(["verify", "--url", server.url, "--model", "plain-copy", "--fingerprints",
                     str(other), "--calibration", str(owner["calibration"]), "--json", str(out)],
                    capsys)
    assert "made for another 'ipguard' set" in err

    # a set whose images do not fit the model (3x32x32 vs 1x28x28), calibrated by hand
    wide = make_set(tmp_path / "wide" / "rce.safetensors", torch.zeros(2, 3, 32, 32),
                    torch.zeros(2).long(), "rce", target="the-target")
    sha = load_sets([wide])[0].sha256
    calibration = load_calibration(owner["calibration"])
    calibration["methods"] = {"rce": {**calibration["methods"]["cae"], "set_sha256": sha}}
    (tmp_path / "wide.json").write_text(json.dumps(calibration))
    err = cli_error(["verify", "--url", server.url, "--model", "plain-copy", "--fingerprints",
                     str(wide), "--calibration", str(tmp_path / "wide.json"), "--json",
                     str(out)], capsys)
    assert "does not fit images of C x H x W = 3x32x32" in err
    assert not out.exists()

    with pytest.raises(UserError, match="repeats and votes must be >= 1; got 0 and 1"):
        run_verify(server.url, "plain-copy", owner, repeats=0)


def test_server_killed_and_restarted_mid_run(served_repo: Path,
                                             owner: dict[str, Path]) -> None:
    """Every repeat is accounted for: completed + failed == requested; none is a mismatch."""
    port = free_port()
    first = LocalServer(served_repo, "--models", "plain-copy", "--seed", "0", port=port).start()
    second = LocalServer(served_repo, "--models", "plain-copy", "--seed", "0", port=port)
    finished = {"n": 0}
    restart: list[threading.Thread] = []

    def on_repeat() -> None:
        finished["n"] += 1
        if finished["n"] == 6:  # mid-run: kill -9, then bring it back on the same port
            first.kill()
            thread = threading.Thread(target=second.start, daemon=True)
            thread.start()
            restart.append(thread)

    repeats = 30
    try:
        report = run_verify(first.url, "plain-copy", owner, batch_size=25, concurrency=2,
                            on_repeat=on_repeat,
                            options=VerifyOptions(repeats=repeats, min_success=0.05),
                            retry=RetryPolicy(attempts=4, backoff_s=0.05, max_backoff_s=0.2))
        for thread in restart:
            thread.join(timeout=180)
    finally:
        first.stop()
        second.stop()
    assert restart, "the run ended before the server was killed"
    failed = 0
    for row in report["methods"]:
        assert row["repeats"] + row["repeats_failed"] == repeats
        assert row["repeats"] >= 1
        assert row["mr_mean"] == 1.0  # failed queries are left out, never scored as mismatches
        failed += row["repeats_failed"]
    assert failed >= 1
    assert report["retries"] >= 1


def test_remote_calibration_matches_in_process(server: LocalServer, owner: dict[str, Path],
                                               tmp_path: Path) -> None:
    out = tmp_path / "remote.json"
    assert main(["calibrate", "--fingerprints", str(owner["sets"]), "--url", server.url,
                 "--model", "indep-2", "--repeats", "2", "--out", str(out)]) == 0
    remote = load_calibration(out)["methods"]
    local = load_calibration(owner["calibration"])["methods"]
    for method, entry in remote.items():
        assert entry["independent_names"] == ["indep-2"]
        assert entry["independent_rates"] == [local[method]["independent_rates"][1]]
        assert entry["fit"]["family"] == "normal" and "fewer than two" in entry["fit"]["note"]
        # paths are stored relative to the calibration file
        assert (out.parent / entry["set_file"]).resolve() == (
            owner["sets"] / f"{method}.safetensors").resolve()


def test_overall_verdict_line_and_its_guarantee(server: LocalServer, owner: dict[str, Path],
                                                capsys: pytest.CaptureFixture) -> None:
    report = run_verify(server.url, "plain-copy", owner, repeats=2)
    overall = report["overall"]
    assert overall["verdict"] == "stolen" and overall["alpha"] == 0.01
    assert overall["stolen_by"] == ["cae", "ipguard"]
    assert "at most 0.01 across all 2 method(s) (Holm)" in overall["guarantee"]
    for row in report["methods"]:
        assert row["interval"] == [1.0, 1.0]  # a deterministic copy: no uncertainty on this set
        assert row["interval_over_fingerprints"][0] < 1.0 or row["mr_mean"] == 1.0
        assert row["p_value_rank"] == pytest.approx(1 / 7)  # six calibration models
        assert row["holm_level"] in (0.005, 0.01)
    code = main(["verify", "--url", server.url, "--model", "indep-2", "--fingerprints",
                 str(owner["sets"]), "--calibration", str(owner["calibration"]), "--repeats",
                 "2", "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0 and "overall: not_proven at family-wise alpha 0.01" in printed


def _csrp_at_the_boundary(owner: dict[str, Path], served_repo: Path, tmp_path: Path) -> Path:
    """A calibration whose decision boundary sits exactly on the CSRP copy's mean rate, so
    that the copy stays inconclusive and a budget is spent round after round."""
    from models.runtime import load_predictor
    from models.transforms import build_transform
    from verifier_client.matching import matching_rates
    from verifier_client.verdict import logit

    calibration = load_calibration(owner["calibration"])
    predictor = load_predictor(served_repo / "plain-copy")
    transform = build_transform({"name": "csrp", "sigma": 1.16, "p": 3})
    for fset in load_sets([owner["sets"]]):
        mean = matching_rates(predictor, fset, transform, 200, 0).mean
        pattern = np.array([-1.5, -0.8, -0.3, 0.3, 0.8, 1.5])
        pattern /= pattern.std(ddof=1)
        n, sd = len(pattern), 0.3
        from scipy import stats

        centre = logit(mean, fset.n) - stats.t.isf(0.01 / 2, df=n - 1) * sd * math.sqrt(1 + 1 / n)
        rates = 1 / (1 + np.exp(-(centre + sd * pattern)))
        entry = calibration_entry(fset.method, rates.tolist(), [f"m{i}" for i in range(n)],
                                  n_fingerprints=fset.n)
        calibration["methods"][fset.method].update(entry)
    # measured behind CSRP (1.16, 3), one vote, two repeats: the protocol of the suspect
    calibration["protocol"] = {"front": "csrp(sigma=1.16, p=3)",
                               "members": [{"name": "csrp", "sigma": 1.16, "p": 3}],
                               "votes": 1, "repeats": 2, "seed": 0}
    path = tmp_path / "boundary.json"
    path.write_text(json.dumps(calibration))
    return path


def test_budget_keeps_querying_while_a_method_is_inconclusive(
        owner: dict[str, Path], served_repo: Path, tmp_path: Path) -> None:
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(served_repo / "plain-copy", repo / "csrp-copy")
    shutil.copytree(served_repo / "plain-copy", repo / "plain-copy")
    config = json.loads((repo / "csrp-copy" / "config.json").read_text())
    config.update(name="csrp-copy", preprocessing={"name": "csrp", "sigma": 1.16, "p": 3})
    (repo / "csrp-copy" / "config.json").write_text(json.dumps(config))
    calibration = load_calibration(_csrp_at_the_boundary(owner, served_repo, tmp_path))
    sets = load_sets([owner["sets"]])
    with LocalServer(repo, "--seed", "3") as server:
        budget = 2 * 50 * 2 * 4  # four rounds of 2 repeats of both 50-sample sets
        report = verify(server.url, "csrp-copy", sets, calibration,
                        options=VerifyOptions(repeats=2, budget=budget))
        deterministic = verify(server.url, "plain-copy", sets, load_calibration(
            owner["calibration"]), options=VerifyOptions(repeats=2, budget=budget))
    assert report["rounds"] >= 2 and report["queries_used"] <= budget
    assert any(row["verdict"] == "inconclusive" or row["repeats"] > 2
               for row in report["methods"])
    assert sum(row["repeats"] * row["n"] for row in report["methods"]) == report["queries_used"]
    assert deterministic["rounds"] == 1  # decided at once: no query spent beyond the first round


def test_budget_too_small_for_one_round_is_refused(server: LocalServer, owner: dict[str, Path],
                                                   capsys: pytest.CaptureFixture) -> None:
    err = cli_error(["verify", "--url", server.url, "--model", "plain-copy", "--fingerprints",
                     str(owner["sets"]), "--calibration", str(owner["calibration"]),
                     "--repeats", "3", "--budget", "299"], capsys)
    assert "cannot pay for one round (3 repeat(s) of every set = 300 queries)" in err


def test_too_few_calibration_models_for_the_rank_rule_is_refused(
        server: LocalServer, owner: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    err = cli_error(["verify", "--url", server.url, "--model", "plain-copy", "--fingerprints",
                     str(owner["sets"]), "--calibration", str(owner["calibration"]),
                     "--decide-by", "rank"], capsys)
    assert "the calibration has 6 models; deciding by rank at alpha 0.01 over 2 method(s) " \
           "needs at least 199" in err


def test_a_server_that_dies_gives_no_verdict_not_a_silent_one(
        served_repo: Path, owner: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    """Killed mid-run and never restarted: the circuit breaker stops the run quickly and the
    verdict is refused (exit 3), with the accounting in the JSON."""
    port = free_port()
    server = LocalServer(served_repo, "--models", "plain-copy", "--seed", "0", port=port).start()
    answered = {"n": 0}

    def on_repeat() -> None:
        answered["n"] += 1
        if answered["n"] == 3:
            server.kill()

    try:
        report = run_verify(server.url, "plain-copy", owner, batch_size=25, concurrency=2,
                            options=VerifyOptions(repeats=40), unreachable_after_s=1.0,
                            on_repeat=on_repeat,
                            retry=RetryPolicy(attempts=1000, backoff_s=0.05, max_backoff_s=0.1))
    finally:
        server.stop()
    assert report["overall"]["verdict"] == "no_verdict"
    assert "stopped answering" in report["overall"]["reason"]
    assert all(row["verdict"] == "no_verdict" for row in report["methods"])
    assert sum(row["repeats"] for row in report["methods"]) >= 1
    out = tmp_path / "dead.json"
    code = main(["verify", "--url", server.url, "--model", "plain-copy", "--fingerprints",
                 str(owner["sets"]), "--calibration", str(owner["calibration"]), "--json",
                 str(out), "--no-progress", "--unreachable-after", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach an inference server" in err  # nothing ever answered
    assert not out.exists()


def test_votes_and_adaptive_verification(owner: dict[str, Path], served_repo: Path,
                                         tmp_path: Path, capsys) -> None:
    """--votes K asks K times per repeat; --adaptive probes first and switches to the EOT sets
    (here the same files, to check the switch) and their front-matched calibration, with its
    votes and repeats, only behind a randomized front."""
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(served_repo / "plain-copy", repo / "plain-copy")
    shutil.copytree(served_repo / "plain-copy", repo / "csrp-copy")
    config = json.loads((repo / "csrp-copy" / "config.json").read_text())
    config.update(name="csrp-copy", preprocessing={"name": "csrp", "sigma": 1.16, "p": 3})
    (repo / "csrp-copy" / "config.json").write_text(json.dumps(config))
    front = load_calibration(owner["front_calibration"])
    with LocalServer(repo, "--seed", "1") as server:
        voted = verify(server.url, "csrp-copy", load_sets([owner["sets"]]), front,
                       options=VerifyOptions(repeats=3, votes=3))
        assert voted["votes"] == 3 and voted["queries_used"] == 3 * 3 * 2 * 50
        assert all(row["repeats"] == 3 and row["fronts"] == 5 for row in voted["methods"])
        reports = {}
        for model in ("csrp-copy", "plain-copy"):
            out = tmp_path / f"{model}.json"
            code = main(["verify", "--url", server.url, "--model", model, "--fingerprints",
                         str(owner["sets"]), "--calibration", str(owner["calibration"]),
                         "--repeats", "2", "--adaptive", "--eot-fingerprints",
                         str(owner["sets"]), "--eot-calibration",
                         str(owner["front_calibration"]), "--json", str(out), "--no-progress"])
            assert code == 0, capsys.readouterr().err
            reports[model] = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert "randomized front detected" in printed and "no randomness detected" in printed
    assert "measured behind front csrp(sigma=1.16..1.3, p=3..6) (5 member(s)), 3 vote(s)" in \
        printed
    csrp = reports["csrp-copy"]
    assert csrp["adaptive"]["randomized"] and csrp["votes"] == 3
    assert csrp["repeats_requested"] == 3  # the calibration's repeats, not --repeats
    assert not reports["plain-copy"]["adaptive"]["randomized"]
    assert reports["plain-copy"]["votes"] == 1


def test_a_suspect_queried_unlike_the_null_is_refused(
        owner: dict[str, Path], served_repo: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    """Round 3's audit: innocents behind CSRP were compared with negatives measured without
    it. Votes or repeats other than the calibration's, a plain calibration for a suspect that
    answers at random, or --adaptive with a calibration made without a front: exit 2."""
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(served_repo / "indep-2", repo / "innocent-csrp")
    config = json.loads((repo / "innocent-csrp" / "config.json").read_text())
    config.update(name="innocent-csrp", preprocessing={"name": "csrp", "sigma": 1.23, "p": 6})
    (repo / "innocent-csrp" / "config.json").write_text(json.dumps(config))
    out = tmp_path / "never.json"
    with LocalServer(repo, "--seed", "2") as server:
        base = ["verify", "--url", server.url, "--model", "innocent-csrp", "--fingerprints",
                str(owner["sets"]), "--json", str(out), "--no-progress"]
        plain, front = str(owner["calibration"]), str(owner["front_calibration"])
        assert "the calibration measured its negatives without a front" in cli_error(
            [*base, "--calibration", plain, "--repeats", "3"], capsys)
        assert "measured with 3 vote(s) per fingerprint and this verification asks 1" in \
            cli_error([*base, "--calibration", front, "--repeats", "3"], capsys)
        assert "averaged 3 repeat(s) behind its front and this verification plans 2" in \
            cli_error([*base, "--calibration", front, "--votes", "3", "--repeats", "2"], capsys)
        assert "needs a calibration measured behind a front" in cli_error(
            [*base, "--calibration", plain, "--adaptive", "--eot-fingerprints",
             str(owner["sets"]), "--eot-calibration", plain], capsys)
    assert not out.exists()
