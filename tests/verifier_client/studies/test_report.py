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
         "overall": {"verdict": "not_proven"}}], "repeats": 5}))
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


def test_report_with_nothing_renderable_exits_1(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", "--results", str(empty), "--out", str(tmp_path / "r")]) == 1
    assert "0 of" in capsys.readouterr().out


def test_report_opens_cleanly_in_headless_chromium(results: Path, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium installed (Debian: apt-get install chromium)")
    out = tmp_path / "report"
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    page = (out / "index.html").as_uri()
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=3000"]
    dom = subprocess.run([*flags, "--dump-dom", page], capture_output=True, text=True,
                         timeout=120)
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, dom.stderr[-2000:]
    assert 'data-images-total="1"' in body.group(0) and 'data-images-decoded="1"' in body.group(0)
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, "--window-size=1000,1400", f"--screenshot={shot}", page],
                   capture_output=True, timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (1400, 1000) and pixels.std() > 5  # not a blank page


def test_every_shipped_result_is_read_by_its_section() -> None:
    """The shipped results/ are what the commands wrote: each section finds the keys its
    command writes (a command that changed its output shape fails here, not in a browser)."""
    from verifier_client.studies.report import build_report

    sections = build_report(ROOT / "results", ROOT / "zoo")
    broken = {s.key: s.message for s in sections if s.status != "ok"}
    assert not broken, broken
