"""Reading a user's file safely: only a regular file, only up to a size, never blocking.

``open()`` on a FIFO blocks until a writer appears, ``/dev/zero`` never ends, and a symlink loop
raises deep inside a library: each is one ``UserError`` line here, before anything is read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from models.errors import UserError

#: How a pickle (protocol 2+) or a ``torch.save`` zip archive starts: never loaded here.
PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")


def read_regular_file(path: str | Path, limit: int, what: str = "file") -> bytes:
    """The bytes of ``path``: a regular file (symlinks followed) of at most ``limit`` bytes."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read the {what} ({error.strerror or error})") from None
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{path}: the {what} is not a regular file")
    if info.st_size > limit:
        raise UserError(f"{path}: the {what} is {info.st_size} bytes, over the limit of "
                        f"{limit}")
    try:
        # O_NONBLOCK: a path swapped for a FIFO after the check still cannot block the read
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        raise UserError(f"{path}: cannot read the {what} ({error.strerror or error})") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise UserError(f"{path}: the {what} is not a regular file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise UserError(f"{path}: the {what} is over the limit of {limit} bytes")
    return data
