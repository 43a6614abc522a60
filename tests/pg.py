"""PostgreSQL for tests: one throw-away database per session, dropped (WITH (FORCE)) at the end;
`database_url`, an empty database on each backend (SQLite and this one).

The server is $AUTH_TEST_POSTGRES_URL, else the machine's 127.0.0.1:5432 (user postgres,
database `test`). We only ever connect to that database to CREATE and DROP our own
`authsvc_test_<hex>` database; nobody else's tables are touched. When the server cannot be
reached the tests that need it are skipped, saying so (an explicit URL that fails is an error).
A plugin (conftest's `pytest_plugins`), so each pytest process (xdist worker) makes one database;
imported into test modules, each module had its own session fixture and its own database.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
CONNECT_TIMEOUT = 3


def admin_url() -> str:
    return os.environ.get("AUTH_TEST_POSTGRES_URL") or DEFAULT_ADMIN_URL


def with_database(url: str, name: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def masked(url: str) -> str:
    """The URL without its password, fit for a skip message."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host + port, parts.path, "", ""))


async def execute(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database of our own on the test PostgreSQL server, for the whole session."""
    admin = admin_url()
    name = f"authsvc_test_{secrets.token_hex(6)}"
    try:
        asyncio.run(execute(admin, f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        message = (f"PostgreSQL unreachable at {masked(admin)} ({type(exc).__name__}: {exc}); "
                   "set AUTH_TEST_POSTGRES_URL to run the PostgreSQL tests")
        if os.environ.get("AUTH_TEST_POSTGRES_URL"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield with_database(admin, name)
    finally:
        asyncio.run(execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def empty_postgres(postgres_url: str) -> str:
    """The session's database with no schema in it (each test starts unmigrated)."""
    asyncio.run(execute(postgres_url, "DROP TABLE IF EXISTS users, legacy_users, legacy_tokens, "
                                      "mfa_totp, mfa_recovery_codes, webauthn_credentials, "
                                      "alembic_version CASCADE"))
    return postgres_url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (no schema yet) on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'auth.db'}"
    return str(request.getfixturevalue("empty_postgres"))
