"""embedded_redis.py: one Valkey per data directory, shared, persistent, never evicting."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from support import process_state, valkey_pids

from service.local import embedded_redis

ROOT = Path(__file__).resolve().parent.parent
CHILD = ("import sys; from pathlib import Path; import redis; "
         "from service.local.embedded_redis import ensure_running; "
         "url = ensure_running(Path(sys.argv[1])); "
         "print(url, redis.Redis.from_url(url).ping())")


def wait_until_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if "Z" in process_state(pid):
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A short temp directory (Unix socket paths are limited); its server is always stopped."""
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="er-"))
    yield path
    embedded_redis.stop(path)
    for pid in valkey_pids(path):  # only servers this test started, by their id
        os.kill(pid, signal.SIGKILL)
        wait_until_gone(pid)
    shutil.rmtree(path, ignore_errors=True)


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5)


def test_fresh_directory_gets_a_server_that_never_evicts_and_persists(data_dir: Path) -> None:
    """ensure_running starts a server answering PING, noeviction and appendonly yes."""
    url = embedded_redis.ensure_running(data_dir)
    assert url == f"unix://{data_dir.resolve() / 'redis.sock'}"
    conn = client(url)
    try:
        assert conn.ping() is True
        assert conn.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert conn.config_get("appendonly") == {"appendonly": "yes"}
        assert Path(str(conn.config_get("dir")["dir"])) == data_dir.resolve()
    finally:
        conn.close()
    pids = valkey_pids(data_dir)
    assert len(pids) == 1
    assert int((data_dir / "redis.pid").read_text()) == pids[0]


def test_socket_is_private_to_its_owner(data_dir: Path) -> None:
    """The Unix socket grants nothing to group or others (unixsocketperm 700)."""
    embedded_redis.ensure_running(data_dir)
    mode = (data_dir / embedded_redis.SOCKET_NAME).stat().st_mode
    assert stat.S_ISSOCK(mode) and mode & 0o077 == 0


def test_second_call_reuses_the_running_server(data_dir: Path) -> None:
    """A second ensure_running returns the same URL and starts nothing."""
    url = embedded_redis.ensure_running(data_dir)
    pids = valkey_pids(data_dir)
    assert embedded_redis.ensure_running(data_dir) == url
    assert valkey_pids(data_dir) == pids and len(pids) == 1


def test_processes_starting_together_share_one_server(data_dir: Path) -> None:
    """Six processes calling ensure_running at once end with one server they all reach."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(data_dir)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(6)]
    outputs = [child.communicate(timeout=60) for child in children]
    assert [c.returncode for c in children] == [0] * 6, outputs
    url = f"unix://{data_dir.resolve() / 'redis.sock'}"
    assert {out.strip() for out, _ in outputs} == {f"{url} True"}, outputs
    pids = valkey_pids(data_dir)
    assert len(pids) == 1, pids
    assert [p.name for p in data_dir.glob("*.pid")] == ["redis.pid"]
    assert int((data_dir / "redis.pid").read_text()) == pids[0]


def test_data_survives_a_restart(data_dir: Path) -> None:
    """What was written before stop() is there after ensure_running (append-only file)."""
    url = embedded_redis.ensure_running(data_dir)
    conn = client(url)
    conn.set("authtest:revoked", "1", ex=3600)
    conn.close()
    [first] = valkey_pids(data_dir)
    assert embedded_redis.stop(data_dir) is True
    assert wait_until_gone(first)
    assert embedded_redis.ensure_running(data_dir) == url
    assert valkey_pids(data_dir) != [first]
    conn = client(url)
    try:
        assert conn.get("authtest:revoked") == b"1"
        assert 0 < conn.ttl("authtest:revoked") <= 3600
    finally:
        conn.close()


def test_stop_ends_the_server(data_dir: Path) -> None:
    """stop() shuts the server down; a second stop() finds none."""
    embedded_redis.ensure_running(data_dir)
    [pid] = valkey_pids(data_dir)
    assert embedded_redis.stop(data_dir) is True
    assert wait_until_gone(pid)
    assert valkey_pids(data_dir) == []
    assert embedded_redis.stop(data_dir) is False


def test_a_stale_socket_from_a_killed_server_is_replaced(data_dir: Path) -> None:
    """After a crash leaves the socket file behind, ensure_running starts a new server."""
    url = embedded_redis.ensure_running(data_dir)
    [pid] = valkey_pids(data_dir)
    os.kill(pid, signal.SIGKILL)  # the server this test started
    assert wait_until_gone(pid)
    assert (data_dir / embedded_redis.SOCKET_NAME).exists()
    assert embedded_redis.ensure_running(data_dir) == url
    conn = client(url)
    try:
        assert conn.ping() is True
    finally:
        conn.close()
    assert len(valkey_pids(data_dir)) == 1


def test_a_data_directory_too_deep_for_a_socket_is_refused() -> None:
    """A socket path over ~100 characters is an error naming it, not a silent failure."""
    parent = Path(tempfile.mkdtemp(dir="/tmp", prefix="er-"))
    try:
        deep = parent / ("d" * 120)
        with pytest.raises(RuntimeError, match="too long"):
            embedded_redis.ensure_running(deep)
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_resolve_url_passes_an_external_url_through(data_dir: Path) -> None:
    """Only "embedded" starts a server; any other URL is returned as given."""
    assert embedded_redis.resolve_url("redis://example.invalid:6379/0", data_dir) == (
        "redis://example.invalid:6379/0")
    assert valkey_pids(data_dir) == []
    assert embedded_redis.resolve_url("embedded", data_dir).startswith("unix://")
