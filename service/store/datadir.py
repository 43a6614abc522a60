"""The data directory and everything in it are the owner's only: 0700 directories, 0600 files.

It holds the SQLite database, the generated JWT secret, the embedded Redis's append-only
files and the dev mail catcher's messages (reset links): nothing another local user may read.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
# For child processes that write into the data directory (the embedded Valkey).
UMASK = 0o077


def private_dir(path: Path) -> Path:
    """mkdir -p, each directory it creates owner-only (whatever the umask)."""
    missing = []
    current = path.absolute()
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:  # another process made it first: it made it the same way
            continue
        os.chmod(directory, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create `path` empty and owner-only unless it exists (its contents are left alone)."""
    private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write a whole file, owner-only from its first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
