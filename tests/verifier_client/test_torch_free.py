"""The owner's HTTP commands (verify, probe) run in a process where torch cannot be imported,
as in a base install (``pip install csrp-testbed``); a command that needs torch says, in one
line, which extra brings it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BLOCK_TORCH = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
from verifier_client.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _without_torch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH, *args], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)


def test_client_commands_run_without_torch(owner: dict[str, Path], tiny_repo: Path,
                                           tmp_path: Path) -> None:
    """verify and probe against a real server, and report, in a process where importing torch
    fails; a command that needs torch says which extra brings it, in one line."""
    from models.local_server import LocalServer

    with LocalServer(tiny_repo, "--models", "target", "--seed", "0") as server:
        verified = _without_torch("verify", "--url", server.url, "--model", "target",
                                  "--fingerprints", str(owner["sets"]), "--calibration",
                                  str(owner["calibration"]), "--repeats", "2", "--no-progress")
        probed = _without_torch("probe", "--url", server.url, "--model", "target",
                                "--trials", "3")
    assert verified.returncode == 0, verified.stderr[-800:]
    assert "overall: stolen" in verified.stdout
    assert probed.returncode == 0 and "no randomness detected" in probed.stdout
    generated = _without_torch("generate", "--method", "vce", "--target",
                               str(tiny_repo / "target"), "--n", "2", "--out",
                               str(tmp_path / "x.safetensors"))
    assert generated.returncode == 2
    assert generated.stderr.strip() == ("error: this command needs torch, which this install "
                                        "does not have: pip install 'csrp-testbed[train]'")
