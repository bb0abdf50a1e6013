"""The server's documented examples (``python -m server --help`` and server/README.md) parse as
printed, name models the shipped zoo has, and the curl lines answer for real against a server
on the shipped zoo."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

from models.local_server import LocalServer
from server.cli import EPILOG, build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "server" / "README.md").read_text()


def _commands(text: str, start: str) -> list[str]:
    """Lines starting with ``start``, backslash continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip().startswith(start)]


def test_server_examples_parse_and_name_shipped_models():
    lines = [line for line in _commands(EPILOG, "python -m server")
             + _commands(EPILOG, "CSRP_SERVER") if "python -m server" in line]
    assert lines
    for line in lines:
        words = shlex.split(line.split("python -m server", 1)[1])
        args = build_parser().parse_args(words)
        for name in getattr(args, "models", "").split(","):
            if name:
                assert (ROOT / "zoo" / name / "config.json").is_file(), (line, name)


def test_the_curl_examples_answer_on_the_shipped_zoo():
    lines = _commands(EPILOG, "curl") + _commands(README, "curl")
    assert len(lines) >= 4
    with LocalServer(ROOT / "zoo", "--models", "target") as server:
        for line in lines:
            command = line.replace("localhost:8000", f"127.0.0.1:{server.port}")
            done = subprocess.run([*shlex.split(command), "-w", "\n%{http_code}"], cwd=ROOT,
                                  capture_output=True, text=True, timeout=60)
            body, _, code = done.stdout.rpartition("\n")
            assert code == "200", (line, done.stdout, done.stderr)
            json.loads(body)  # every answer is JSON
