"""The JS client's own checks, run by its npm scripts: unit tests (node --test), the typed
interface (tsc --noEmit) and the size budget (esbuild, gzip -9, at most 6144 bytes)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parent.parent / "clients" / "js"
INSTALL_LIMIT = 240  # seconds: npm ci from the registry on a slow day
RUN_LIMIT = 120
SIZE_BUDGET = 6144  # bytes, minified and gzipped (-9): the 6 KB
# Which package-lock.json node_modules was installed from: npm ci only when it changed.
STAMP = CLIENT / "node_modules" / ".authsvc-installed-from"

pytestmark = [pytest.mark.node, pytest.mark.xdist_group("client-js")]


def npm(*args: str, limit: float = RUN_LIMIT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false",
           "npm_config_audit": "false", "NO_COLOR": "1"}
    try:
        return subprocess.run(["npm", *args], cwd=CLIENT, env=env, capture_output=True,
                              text=True, timeout=limit)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"npm {' '.join(args)} ran over {limit} s:\n"
                             f"{exc.stdout!r}\n{exc.stderr!r}") from exc


def lock_digest() -> str:
    return hashlib.sha256((CLIENT / "package-lock.json").read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def installed() -> Iterator[None]:
    """node_modules as package-lock.json says; one install at a time across pytest workers."""
    assert (CLIENT / "package-lock.json").is_file(), "clients/js has no package-lock.json"
    guard = Path(tempfile.gettempdir()) / (
        "authsvc-npm-ci-" + hashlib.sha256(str(CLIENT).encode()).hexdigest()[:12] + ".lock")
    with guard.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if not STAMP.is_file() or STAMP.read_text() != lock_digest():
            done = npm("ci", "--loglevel=error", limit=INSTALL_LIMIT)
            assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
            STAMP.write_text(lock_digest())
    yield


def assert_script_passes(script: list[str]) -> str:
    done = npm(*script)
    output = f"{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, f"npm {' '.join(script)} failed:\n{output}"
    return output


@pytest.mark.timeout(INSTALL_LIMIT + RUN_LIMIT)
def test_unit_tests_pass(installed: None) -> None:
    output = assert_script_passes(["test"])
    # node --test's summary (TAP "# pass N" or spec "ℹ pass N"): tests did run, none failed
    passed = re.search(r"^\W*pass (\d+)$", output, re.MULTILINE)
    assert passed and int(passed.group(1)) > 0, output
    assert re.search(r"^\W*fail 0$", output, re.MULTILINE), output


@pytest.mark.timeout(INSTALL_LIMIT + RUN_LIMIT)
def test_type_declarations_check(installed: None) -> None:
    assert_script_passes(["run", "typecheck"])


@pytest.mark.timeout(INSTALL_LIMIT + RUN_LIMIT)
def test_core_fits_the_size_budget(installed: None) -> None:
    output = assert_script_passes(["run", "size"])
    measured = re.search(r"(\d+) minified\+gzip -9", output)
    assert measured, f"the size script said no size:\n{output}"
    print(f"client core: {measured.group(1)} bytes minified and gzipped")
    assert int(measured.group(1)) <= SIZE_BUDGET, output
