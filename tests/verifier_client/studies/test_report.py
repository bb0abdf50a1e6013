"""verifier_client report: one self-contained page from fixture results; missing and malformed
sections say so while the rest renders; and a real headless browser loads it cleanly."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from verifier_client.cli import main

ROOT = Path(__file__).resolve().parents[3]


def _png(color: int) -> bytes:
    buffer = io.BytesIO()
    image = np.full((40, 60, 3), color, dtype=np.uint8)
    image[10:30, 10:50] = 255 - color
    Image.fromarray(image).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    (root / "evaluation").mkdir(parents=True)
    (root / "evaluation" / "evaluation.json").write_text(json.dumps(
        {"rows": [], "methods": ["vce"], "seed": 3, "code_version": "0.1.0+gtest"}))
    (root / "evaluation" / "evaluation.md").write_text(
        "| row | vce |\n|---|---:|\n| target | 1.00 |\n")
    (root / "evaluation" / "evaluation.png").write_bytes(_png(30))
    (root / "demo.json").write_text(json.dumps({"reports": [
        {"model": "copy", "role": "positive",
         "methods": [{"method": "vce", "mr_mean": 1.0, "verdict": "stolen"},
                     {"method": "cae", "mr_mean": 0.9, "verdict": "stolen"}],
         "overall": {"verdict": "stolen"}},
        {"model": "heldout-resnet20-01", "role": "heldout-negative",
         "methods": [{"method": "vce", "mr_mean": 0.5, "verdict": "not_proven"},
                     {"method": "cae", "mr_mean": 0.3, "verdict": "not_proven"}],
         "overall": {"verdict": "not_proven"}}], "repeats": 5,
        "code_version": "0.1.0+gtest"}))
    (root / "tune-defence").mkdir()
    (root / "tune-defence" / "tune_defence.json").write_text(json.dumps(
        {"points": [], "fronts": {}, "code_version": "0.1.0+gother.dirty"}))
    (root / "validation").mkdir()
    (root / "validation" / "validation.json").write_text(json.dumps(
        {"negatives": {}, "positives": {}, "code_version": "0.1.0+gtest",
         "cache": {"reused": 5, "measured": 2}}))
    (root / "roc-eot").mkdir()
    (root / "roc-eot" / "roc.json").write_text(json.dumps(
        {"roles": {}, "fingerprints": [], "methods": {}, "code_version": "0.1.0+gtest",
         "manifest_sha256": "0123456789ab" + "0" * 52}))
    (root / "roc").mkdir()
    (root / "roc" / "roc.json").write_text("{not json")  # malformed
    (root / "stability").mkdir()
    (root / "stability" / "stability.json").write_text(json.dumps({"something": "else"}))
    return root


def test_report_renders_present_missing_and_malformed_sections(results: Path,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert main(["report", "--results", str(results), "--repository", str(ROOT / "zoo"),
                 "--out", str(out)]) == 0
    html = (out / "index.html").read_text()
    assert "<td>target</td>" in html and "seed <code>3</code>" in html
    assert html.count("data:image/png;base64,") == 1  # inlined, nothing linked
    assert not re.search(r"<img[^>]+src=\"(?!data:)", html)
    assert "Verdicts on the shipped pirates" in html and "1.00 S" in html
    # the demo table: a role column marks innocents, full names, the sets' own order
    assert "<td>heldout-resnet20-01</td>\n<td>innocent (held out)</td>" in html
    assert html.index(">vce</th>") < html.index(">cae</th>")
    assert re.search(r"roc/roc.json could not be read: [^<]*Expecting", html)
    assert "not the output of this section&#39;s command (no modes, methods)" in html
    assert "Not in this results folder (peer/peer.json is missing)" in html
    assert "python benchmarks/bench_peer.py" in html
    # the figure has its alt text and caption, tables scroll in their own box
    assert re.search(r'<img src="data:image/png;base64,[^"]+" alt="Bar chart: matching rate', html)
    assert "<figcaption>Figure: Matching rate T_avg" in html
    assert '<div class="table-wrap"><table>' in html
    # the demo's takeaway is computed from its record: one pirate, one innocent
    assert "1 of 1 pirate copies are called stolen (copy)" in html
    assert "heldout-resnet20-01 (not proven)" in html


def test_the_page_states_one_results_version_and_flags_the_others(results: Path,
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    html = (out / "index.html").read_text()
    assert "Results made at code version <code>0.1.0+gtest</code>, except 1 section" in html
    assert ('<p class="flag">Made at 0.1.0+gother.dirty: a checkout with uncommitted changes'
            in html)
    assert "5 of 7 measurements were read from the cache of an earlier run" in html
    # a study of a population the zoo has grown past says so
    assert "Measured on the population manifest 0123456789ab; the zoo&#39;s is now" in html
    assert html.count('<p class="flag">') == 1  # the sections at 0.1.0+gtest are not flagged


def test_takeaways_quote_their_record_and_stay_silent_without_it() -> None:
    from verifier_client.studies.report_takeaways import takeaway

    record = {"alpha": 0.01, "paths": {"plain": {"calibration_models": 24}},
              "negatives": {
                  "heldout behind none": {"kind": "heldout", "count": 48, "accused": [],
                                          "false_accusation_interval": [0.0, 0.074]},
                  "leave-one-out behind none": {"kind": "leave_one_out", "count": 24,
                                                "accused": ["indep-03"],
                                                "false_accusation_interval": [0.001, 0.21]}},
              "positives": {"pruning": {"models": ["a", "b"], "caught": ["a", "b"]},
                            "distillation-train": {"models": ["s"], "caught": []}}}
    text = takeaway("validation", record)
    assert text.startswith("0 of 48 held-out innocents accused behind each of 1 fronts")
    assert "1 calibration negatives are accused" in text and "fitted on 23 models" in text
    assert text.endswith("Caught: 2 of 2 pirates of the other attacks, 0 of 1 label-only "
                         "students.")
    assert takeaway("validation", {"alpha": 0.01}) == ""
    assert takeaway("no-such-section", record) == ""


def test_report_with_nothing_renderable_exits_1(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", "--results", str(empty), "--out", str(tmp_path / "r")]) == 1
    assert "0 of" in capsys.readouterr().out


def _open_in_chromium(page: Path, profile: Path, width: int = 1400) -> dict[str, str]:
    """Load ``page`` in headless Chromium at ``width`` px: the self-check attributes the page's
    script sets on <body>, the console lines, and every URL the browser asked the network
    for (from Chromium's own net log)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium installed (Debian: apt-get install chromium)")
    netlog = profile / "netlog.json"
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={profile / 'user'}", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=5000", f"--window-size={width},1400",
             f"--log-net-log={netlog}", "--net-log-capture-mode=Default"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=180)
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body, dom.stderr[-2000:]
    found = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))
    found["console"] = "\n".join(line for line in dom.stderr.splitlines() if "CONSOLE" in line)
    found["network"] = " ".join(_page_requests(netlog))
    return found


def _page_requests(netlog: Path) -> list[str]:
    """http(s) URLs the page asked for, from Chromium's net log: requests with an initiator
    (a file:// page's is "null"); the browser's own traffic (updates, accounts) has none."""
    raw = netlog.read_text()
    try:
        log = json.loads(raw)
    except json.JSONDecodeError:  # a log the browser did not close: events end with a comma
        log = json.loads(raw.rstrip().rstrip(",") + "]}")
    names = {code: name for name, code in log["constants"]["logEventTypes"].items()}
    return sorted({event["params"]["url"] for event in log["events"]
                   if names.get(event["type"]) == "URL_REQUEST_START_JOB"
                   and str(event.get("params", {}).get("url", "")).startswith("http")
                   and event["params"].get("initiator") not in (None, "not an origin")})


def test_report_opens_cleanly_in_headless_chromium(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    found = _open_in_chromium(out / "index.html", tmp_path)
    assert found["images-total"] == "1" and found["images-decoded"] == "1"
    assert found["images-without-alt"] == "0" and found["figures-without-caption"] == "0"
    assert found["overflowing"] == "0", found["overflow-list"]
    assert not found["console"], found["console"]
    assert not found["network"], found["network"]  # opens offline: nothing fetched
    shot = tmp_path / "shot.png"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'shot-profile'}", "--window-size=1000,1400",
                    f"--screenshot={shot}", (out / "index.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (1400, 1000) and pixels.std() > 5  # not a blank page


def test_the_page_blocks_what_it_would_fetch(tmp_path: Path) -> None:
    """The check above can fail: a page that links a remote image is caught twice, by the
    content policy in the console and, were the policy gone, in the net log."""
    from verifier_client.studies import report

    page = tmp_path / "index.html"
    html = report.render([], zoo=ROOT / "zoo", command="test", code_version="0",
                         created="now")
    page.write_text(html.replace("</body>", '<img src="http://192.0.2.1/x.png" alt="x"></body>'))
    found = _open_in_chromium(page, tmp_path / "policy")
    assert "Content Security Policy" in found["console"] or "Refused" in found["console"]
    bare = tmp_path / "bare.html"
    bare.write_text(page.read_text().replace('http-equiv="Content-Security-Policy"', ""))
    assert "http://192.0.2.1/x.png" in _open_in_chromium(bare, tmp_path / "bare")["network"]


def test_the_shipped_report_reads_well_in_a_browser(tmp_path: Path) -> None:
    """The page made from the shipped results at 1400 px: every figure decoded, with alt text
    and caption, no text out of its box, no table needing a scroll bar, nothing fetched."""
    out = tmp_path / "report"
    assert main(["report", "--results", str(ROOT / "results"), "--repository", str(ROOT / "zoo"),
                 "--out", str(out)]) == 0
    found = _open_in_chromium(out / "index.html", tmp_path)
    total = int(found["images-total"])
    assert total >= 8 and found["images-decoded"] == str(total)
    assert found["images-without-alt"] == "0" and found["figures-without-caption"] == "0"
    assert found["overflowing"] == "0", found["overflow-list"]
    assert found["tables-scrolling"] == "0"
    assert not found["console"], found["console"]
    assert not found["network"], found["network"]


def test_every_shipped_result_is_read_by_its_section() -> None:
    """The shipped results/ are what the commands wrote: each section finds the keys its
    command writes (a command that changed its output shape fails here, not in a browser)."""
    from verifier_client.studies.report import build_report

    sections = build_report(ROOT / "results", ROOT / "zoo")
    broken = {s.key: s.message for s in sections if s.status != "ok"}
    assert not broken, broken
    silent = [s.key for s in sections if not s.takeaway]
    assert not silent, f"sections whose takeaway could not be computed: {silent}"
