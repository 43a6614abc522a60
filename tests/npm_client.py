"""The JS client's Node tooling for the tests: npm run in clients/js with a time limit, and its
node_modules installed by `npm ci` from package-lock.json, once for every pytest worker."""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

CLIENT = Path(__file__).resolve().parent.parent / "clients" / "js"
INSTALL_LIMIT = 240  # seconds: npm ci from the registry on a slow day
RUN_LIMIT = 120
# Which package-lock.json node_modules was installed from: npm ci only when it changed.
STAMP = CLIENT / "node_modules" / ".authsvc-installed-from"


def run_limited(argv: list[str], limit: float) -> subprocess.CompletedProcess[str]:
    """`argv` run in clients/js; a run over `limit` seconds fails the test with its output."""
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false",
           "npm_config_audit": "false", "NO_COLOR": "1"}
    try:
        return subprocess.run(argv, cwd=CLIENT, env=env, capture_output=True, text=True,
                              timeout=limit)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{' '.join(argv)} ran over {limit} s:\n"
                             f"{exc.stdout!r}\n{exc.stderr!r}") from exc


def npm(*args: str, limit: float = RUN_LIMIT) -> subprocess.CompletedProcess[str]:
    return run_limited(["npm", *args], limit)


def lock_digest() -> str:
    return hashlib.sha256((CLIENT / "package-lock.json").read_bytes()).hexdigest()


def ensure_installed() -> None:
    """node_modules as package-lock.json says. The tests of the client and the browser tests of
    its React adapter run on different pytest workers: one install at a time, and only one."""
    assert (CLIENT / "package-lock.json").is_file(), "clients/js has no package-lock.json"
    guard = Path(tempfile.gettempdir()) / (
        "authsvc-npm-ci-" + hashlib.sha256(str(CLIENT).encode()).hexdigest()[:12] + ".lock")
    with guard.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if not STAMP.is_file() or STAMP.read_text() != lock_digest():
            done = npm("ci", "--loglevel=error", limit=INSTALL_LIMIT)
            assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
            STAMP.write_text(lock_digest())
