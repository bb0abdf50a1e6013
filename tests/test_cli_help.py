"""Every command of the three CLIs speaks one language: a one-line summary, a description, help
for every flag, examples that parse as printed on the shipped zoo (the cheap ones run for real),
and a --help that imports no torch."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import models.commands
import verifier_client.commands
from models.cli_support import build_parser
from server.cli import build_parser as server_parser

ROOT = Path(__file__).resolve().parents[1]
PARSERS = {"models": lambda: build_parser("python -m models", "", models.commands),
           "verifier_client": lambda: build_parser("python -m verifier_client", "",
                                                   verifier_client.commands)}


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = _subcommands(sub)
                found.update({f"{name} {k}": v for k, v in nested.items()} or {name: sub})
    return found


def _commands() -> list[tuple[str, str, argparse.ArgumentParser]]:
    return [(cli, name, sub) for cli, make in PARSERS.items()
            for name, sub in _subcommands(make()).items()]


def _modules() -> list[tuple[str, object]]:
    import importlib
    import pkgutil

    found = []
    for package in (models.commands, verifier_client.commands):
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            if hasattr(module, "register"):
                cli = package.__name__.split(".")[0]
                found.append((cli, module))
    return found


@pytest.mark.parametrize(("cli", "name", "parser"), _commands(), ids=lambda v: str(v)[:40])
def test_every_command_and_flag_is_described(cli: str, name: str,
                                              parser: argparse.ArgumentParser) -> None:
    assert parser.description and len(parser.description) > 30, name
    assert parser.epilog and "examples:" in parser.epilog, name
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        assert action.help and action.help.strip(), f"{cli} {name}: {action.option_strings}"


def test_server_flags_are_described() -> None:
    for action in server_parser()._actions:
        if not isinstance(action, argparse._HelpAction):
            assert action.help and action.help.strip(), action.option_strings


def test_top_level_help_lists_every_command() -> None:
    for cli, make in PARSERS.items():
        text = make().format_help()
        for name in {n.split()[0] for c, n, _ in _commands() if c == cli}:
            assert f"    {name}" in text, (cli, name)


def _examples() -> list[tuple[str, object]]:
    return [(cli, example) for cli, module in _modules() for example in module.EXAMPLES]


@pytest.mark.parametrize(("cli", "example"), _examples(),
                         ids=lambda v: getattr(v, "command", v)[17:70])
def test_every_example_parses_as_printed(cli: str, example: object) -> None:
    words = shlex.split(example.command)  # type: ignore[attr-defined]
    while words and "=" in words[0] and not words[0].startswith("-"):
        words = words[1:]  # an environment setting before the command (VAR=value python ...)
    assert words[:3] == ["python", "-m", cli], words
    parser = PARSERS[cli]()
    import os

    previous = os.getcwd()
    os.chdir(ROOT)
    try:
        args = parser.parse_args(words[3:])
    finally:
        os.chdir(previous)
    assert callable(args.run)


CHEAP = [(cli, e) for cli, e in _examples() if e.cheap]  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.parametrize(("cli", "example"), CHEAP, ids=lambda v: getattr(v, "command", v)[17:70])
def test_cheap_examples_run_for_real(cli: str, example: object) -> None:
    result = subprocess.run([sys.executable, *shlex.split(example.command)[1:]],  # type: ignore
                            cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**__import__("os").environ, "CSRP_COMPILE": "0"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    for line in result.stdout.splitlines():
        assert line == line.rstrip(), f"trailing spaces in piped output: {line!r}"
    assert not result.stdout.startswith("\n"), "a blank line left by a progress bar"


@pytest.mark.parametrize("argv", [["models", "--help"], ["models", "train", "--help"],
                                  ["verifier_client", "--help"],
                                  ["verifier_client", "generate", "--help"],
                                  ["verifier_client", "verify", "--help"],
                                  ["server", "--help"]])
def test_help_imports_no_torch(argv: list[str]) -> None:
    """--help must answer at once: it may not import torch (seconds) or onnxruntime."""
    code = ("import runpy, sys\n"
            f"sys.argv = {argv!r}\n"
            "try:\n"
            f"    runpy.run_module({argv[0]!r}, run_name='__main__')\n"
            "except SystemExit:\n"
            "    pass\n"
            "print(json.dumps(sorted(m for m in ('torch', 'torchvision', 'onnxruntime') "
            "if m in sys.modules)), file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", "import json\n" + code], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert "usage:" in result.stdout
    assert json.loads(result.stderr.strip().splitlines()[-1]) == []
