"""Real parts for every test: a Redis server, an SMTP server, SQLite, PostgreSQL if reachable.

Redis: $AUTH_TEST_REDIS_URL, else the machine's server on 127.0.0.1:6379 (database 9), else an
embedded Valkey started for the session. Each test gets its own key prefix and RQ queue name,
and deletes only its own keys afterwards: nobody else's data is flushed.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from needed_tools import chromium_path, chromium_setting, node_missing
from support import (
    LiveServer,
    Mailbox,
    app_settings,
    delete_prefixed,
    migrated_template,
    smtp_sink,
)

from service.app import create_app
from service.config import (
    Settings,
)
from service.local import embedded_redis

# PostgreSQL's fixtures as a plugin: imported into each test module instead, a session-scoped
# fixture is a different fixture per module, and each made its own database.
pytest_plugins = ["pg", "browser_harness", "passkey_api"]
ROOT = Path(__file__).resolve().parent.parent
TEST_REDIS_DB = 9


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    explicit = os.environ.get("AUTH_TEST_REDIS_URL")
    if explicit:
        yield explicit
        return
    machine = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
    if _redis_answers(machine):
        yield machine
        return
    data_dir = tmp_path_factory.mktemp("embedded-redis")
    url = embedded_redis.ensure_running(data_dir)
    print(f"\nno Redis on 127.0.0.1:6379: tests use an embedded Valkey at {url}")
    yield url
    embedded_redis.stop(data_dir)


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"authtest-{uuid.uuid4().hex[:10]}:"
    yield prefix
    delete_prefixed(redis_url, prefix)


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    with smtp_sink() as sink:
        yield sink


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per session (per xdist worker); tests get copies of it."""
    return migrated_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture
def settings(tmp_path: Path, redis_url: str, redis_prefix: str,
             smtp_server: tuple[Mailbox, int], sqlite_template: Path) -> Settings:
    return app_settings(tmp_path, redis_url, redis_prefix, smtp_server[1], sqlite_template)


@pytest.fixture
def make_client() -> Iterator[Any]:
    """Serve an app built from given settings; returns an httpx.Client aimed at it."""
    servers: list[LiveServer] = []
    clients: list[httpx.Client] = []

    def make(settings: Settings, **kwargs: Any) -> httpx.Client:
        server = LiveServer(create_app(settings, **kwargs)).__enter__()
        servers.append(server)
        client = httpx.Client(base_url=server.url, timeout=30)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
    for server in servers:
        server.__exit__()


@pytest.fixture
def client(settings: Settings, make_client: Any) -> httpx.Client:
    return make_client(settings)  # type: ignore[no-any-return]


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[Any, httpx.Client]]:
    """The app itself (its routes, its state) and a client of it on a live server."""
    app = create_app(settings)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield app, client


@pytest.fixture(autouse=True)
def no_unhandled_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A crash is a bug: any request that reached the 500 handler fails the test."""
    yield
    # caplog.records in teardown holds only teardown's records: read the earlier phases.
    records = caplog.get_records("setup") + caplog.get_records("call")
    crashes = [r.getMessage() for r in records if r.levelno >= logging.ERROR
               and r.name.startswith(("authsvc", "uvicorn"))]
    assert not crashes, crashes


# -- tools the suite cannot install itself ---------------------------------------------------
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests need Chromium and the client's tests Node: without them they are skipped
    with the reason in the summary (scripts/test installs Chromium when it can), never
    silently passed."""
    no_chromium = None if chromium_path() else pytest.mark.skip(reason=(
        f"no Chromium at {chromium_setting()}: "
        "install Debian's chromium (scripts/test does, as root) or set AUTH_TEST_CHROMIUM"))
    missing = node_missing()
    no_node = missing and pytest.mark.skip(reason=f"no {missing} on PATH: the JS client's "
                                                  "tests need Node 20 and npm")
    for item in items:
        if no_chromium and item.get_closest_marker("browser"):
            item.add_marker(no_chromium)
        if no_node and item.get_closest_marker("node"):
            item.add_marker(no_node)


# -- no thread left behind ------------------------------------------------------------------
# A non-daemon thread that nothing stopped (a server started in a thread, a connection's
# worker thread: aiosqlite's are non-daemon unless the pool marks them) would keep this
# process from exiting after the last test: CI would hang until its time limit instead of
# failing. So the session checks, says which, and exits with an error.
_leaked_threads: list[str] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    deadline = time.monotonic() + 5
    while True:
        alive = [t.name for t in threading.enumerate()
                 if t is not threading.main_thread() and t.is_alive() and not t.daemon]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if alive:
        _leaked_threads.extend(alive)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _leaked_threads:
        terminalreporter.write_line(
            f"FAILED: {len(_leaked_threads)} non-daemon thread(s) still running after the "
            f"session (an unclosed SQLite connection?): {sorted(set(_leaked_threads))}",
            red=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _leaked_threads:  # they would block the interpreter's exit for ever
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(pytest.ExitCode.TESTS_FAILED))

