"""Both CLIs (``models``, ``verifier_client``; ``server`` for usage errors): every output path is
checked before any work, values the parser used to let through are refused, and a usage error
is one line with a pointer to --help."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from models.cli import main as models_main
from models.repository import WEIGHTS_FILE
from server.cli import main as server_main
from verifier_client.cli import main as verifier_main

MODELS_OUTPUTS = [("train", "--out"), ("modify", "int8", "--out"), ("adapt", "--out"),
                  ("evaluate", "--json"), ("zoo", "--out")]
VERIFIER_OUTPUTS = [("generate", "--out"), ("pools", "--out-surrogates"), ("match", "--json"),
                    ("calibrate", "--out"), ("verify", "--json"), ("probe", "--json"),
                    ("demo", "--json"), ("evaluate", "--out"), ("stability", "--out"),
                    ("loadtest", "--out"), ("roc", "--out"), ("validate", "--out")]
FILE_OUTPUTS = {"--json", "generate --out", "calibrate --out"}


def one_error_line(capsys: pytest.CaptureFixture[str], code: int) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    return err


def _bad_paths(tmp_path: Path) -> list[tuple[str, str]]:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    folder = tmp_path / "folder"
    folder.mkdir()
    return [("/proc/nope/out", "cannot write under /proc"),
            (str(a_file / "out"), "is a file, not a folder"),
            (str(folder), "is a folder")]


@pytest.mark.parametrize("command", MODELS_OUTPUTS + VERIFIER_OUTPUTS,
                         ids=lambda c: " ".join(c))
def test_unwritable_outputs_are_refused_before_any_work(command: tuple[str, ...],
                                                        tmp_path: Path, capsys) -> None:
    *words, flag = command
    main = models_main if command in MODELS_OUTPUTS else verifier_main
    is_file = flag == "--json" or f"{words[0]} {flag}" in FILE_OUTPUTS
    for path, message in _bad_paths(tmp_path):
        if message == "is a folder" and not is_file:
            continue  # a folder is what a folder output wants
        if words[0] in ("train", "adapt", "modify") and message == "is a folder":
            continue
        err = one_error_line(capsys, main([*words, flag, path]))
        assert message in err, err


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "--arch", "tinycnn", "--lr", "-1", "--out", "{tmp}/r/x"], "must be > 0, got -1"),
    (["train", "--arch", "tinycnn", "--lr", "nan", "--out", "{tmp}/r/x"], "must be > 0, got nan"),
    (["train", "--arch", "tinycnn", "--train-fraction", "2", "--out", "{tmp}/r/x"],
     r"must be in \(0, 1\], got 2"),
    (["train", "--arch", "tinycnn", "--out", "{tmp}/r/bad\n"], "invalid model name"),
    (["train"], r"the following arguments are required: --arch, --out \(see python -m models "
                r"train --help\)"),
])
def test_models_cli_values_and_usage(argv: list[str], message: str, tmp_path: Path,
                                     capsys) -> None:
    import re

    err = one_error_line(capsys, models_main([a.format(tmp=tmp_path) for a in argv]))
    assert re.search(message, err), err
    assert not (tmp_path / "r").exists()


def test_verifier_cli_values_and_usage(tmp_path: Path, capsys) -> None:
    err = one_error_line(capsys, verifier_main(
        ["verify", "--url", "http://127.0.0.1:1", "--model", "m", "--fingerprints", "x",
         "--calibration", "c", "--backoff", "nan"]))
    assert "--backoff" in err and "nan" in err
    err = one_error_line(capsys, verifier_main(["verify", "--repeats", "many"]))
    assert "not an integer: 'many'" in err and "(see python -m verifier_client verify --help)" \
        in err


def test_server_usage_error_is_one_line(capsys) -> None:
    assert server_main(["--port", "eighty"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "(see python -m server --help)" in err


def test_an_explicit_backend_needs_its_file(tiny_repo: Path, tmp_path: Path, capsys) -> None:
    entry = tmp_path / "onnx-only"
    shutil.copytree(tiny_repo / "target", entry)
    (entry / WEIGHTS_FILE).unlink()
    err = one_error_line(capsys, models_main(["evaluate", "--model", str(entry), "--backend",
                                              "torch", "--samples", "10"]))
    assert "backend 'torch' needs model.safetensors" in err
    import torch

    from tests.verifier_client.test_calibration import make_set

    make_set(tmp_path / "s.safetensors", torch.zeros(2, 1, 28, 28), torch.zeros(2).long(), "m")
    err = one_error_line(capsys, verifier_main(["match", "--fingerprints",
                                                str(tmp_path / "s.safetensors"), "--model",
                                                str(entry), "--backend", "torch"]))
    assert "backend 'torch' needs model.safetensors" in err
