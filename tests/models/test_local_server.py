"""models.local_server: the child server never outlives the process that
started it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ZOO = ROOT / "zoo"

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_local_server_dies_with_the_process_that_started_it(tmp_path) -> None:
    """A parent killed outright (as ``timeout`` does) takes its server with it."""
    import os
    import signal
    import subprocess
    import time

    code = ("import sys, time; from models.local_server import LocalServer; "
            "s = LocalServer(sys.argv[1], '--models', 'copy').start(); "
            "print(s.process.pid, flush=True); time.sleep(600)")
    parent = subprocess.Popen([sys.executable, "-c", code, str(ZOO)], stdout=subprocess.PIPE,
                              text=True, cwd=ROOT)
    server_pid = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{server_pid}/stat") as stat:
            if stat.read().split()[2] == "Z":  # exited, not yet reaped by init
                return
        time.sleep(0.2)
    os.kill(server_pid, signal.SIGKILL)
    raise AssertionError("the server outlived its parent")
