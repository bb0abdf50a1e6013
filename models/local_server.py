"""Run ``python -m server`` on 127.0.0.1 as a child process (the zoo's extraction students,
the verifier's demo and studies, tests, benchmarks).

Neither ``models`` nor the verifier imports the server package: this starts the server's
command line, exactly as a user would, and the caller talks HTTP to it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from models.errors import UserError

#: The checkout holding the ``server`` package (put on the child's PYTHONPATH).
ROOT = Path(__file__).resolve().parents[1]

_PR_SET_PDEATHSIG = 1  # prctl option: the signal a child gets when its parent dies (Linux)


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the parent dies, so a server
    never outlives the process that started it (e.g. one killed by ``timeout``). Linux ties this
    to the thread that started the child: start servers from a thread that lives as long as
    they should (every caller here uses the main thread). A no-op where prctl is missing."""
    import contextlib
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalServer:
    """``python -m server --repository REPO`` on 127.0.0.1; a context manager.

    ``args`` are extra server flags (``--models a,b``, ``--seed 0`` ...); ``threads`` sets the
    server's torch/ONNX Runtime threads (``None``: the server's default). ``start`` waits until
    ``/v2/health/ready`` answers 200 (models loaded and warmed up). CSRP runs eager unless the
    caller's environment sets ``CSRP_COMPILE`` (compiling costs seconds per new batch size).
    """

    def __init__(self, repository: str | Path, *args: str, port: int | None = None,
                 threads: int | None = 1, quiet: bool = True,
                 checkout: str | Path | None = None) -> None:
        # absolute: the child runs in ROOT, wherever the caller is
        self.repository, self.args = Path(repository).resolve(), args
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.threads, self.quiet = threads, quiet
        self.process: subprocess.Popen[bytes] | None = None
        #: the checkout whose server runs (another version of this project, for comparisons)
        self.checkout = Path(checkout).resolve() if checkout else ROOT

    def start(self, timeout: float = 180.0) -> LocalServer:
        # The flags alone define the server: inherited CSRP_SERVER_* settings are dropped.
        env = {"CSRP_COMPILE": "0", **{k: v for k, v in os.environ.items()
                                       if not k.startswith("CSRP_SERVER_")},
               "PYTHONPATH": os.pathsep.join(filter(None, [str(self.checkout),
                                                           os.environ.get("PYTHONPATH")]))}
        command = [sys.executable, "-m", "server", "--repository", str(self.repository),
                   "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        if self.threads is not None:
            env["OMP_NUM_THREADS"] = str(self.threads)
            command += ["--workers-threads", str(self.threads)]
        self.process = subprocess.Popen(
            [*command, *self.args],
            cwd=self.checkout, env=env, stdout=subprocess.DEVNULL if self.quiet else None,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                message = self.process.stderr.read().decode(errors="replace").strip()
                raise UserError(f"server exited before it was ready: {message[-500:]}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise UserError(f"server on {self.url} not ready after {timeout:.0f} s")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in ``timeout`` seconds."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()

    def kill(self) -> None:
        """SIGKILL: the abrupt death of a server mid-run."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
