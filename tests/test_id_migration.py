"""Issue 9.6: ids are never reused, on SQLite and PostgreSQL, for databases created before
migration 0003 too (migrated with their rows in them)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from support import with_store

from service.store import migrate
from service.store.users import TokenState, UserStore

T = TypeVar("T")
PREVIOUS = "0002"
REVISION = "0003"  # the migration these tests are about (later ones add columns)
JOINED = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def run(url: str, body: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """`body` on a plain connection, committed (no service code between us and the table)."""
    async def go() -> T:
        engine = create_async_engine(migrate.sqlalchemy_url(url))
        try:
            async with engine.begin() as conn:
                return await body(conn)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def insert(name: str, **overrides: Any) -> Callable[[AsyncConnection], Awaitable[int]]:
    values = {"username": name, "username_norm": name, "email": f"{name}@example.com",
              "email_norm": f"{name}@example.com", "display_name": f"{name} ✓", "role": "user",
              "is_active": True, "password_hash": f"$argon2id$hash-of-{name}",
              "token_version": 0, "password_changed_at": JOINED, "date_joined": JOINED,
              "email_verified": False, **overrides}

    async def body(conn: AsyncConnection) -> int:
        columns = ", ".join(values)
        params = ", ".join(f":{c}" for c in values)
        result = await conn.execute(
            sa.text(f"INSERT INTO users ({columns}) VALUES ({params}) RETURNING id"), values)
        return int(result.scalar_one())

    return body


def execute(statement: str, **params: Any) -> Callable[[AsyncConnection], Awaitable[None]]:
    async def body(conn: AsyncConnection) -> None:
        await conn.execute(sa.text(statement), params)

    return body


async def everything(conn: AsyncConnection) -> list[tuple[Any, ...]]:
    result = await conn.execute(sa.text("SELECT * FROM users ORDER BY id"))
    return [tuple(row) for row in result]


def test_ids_are_never_reused_after_the_highest_is_deleted(database_url: str) -> None:
    """On a freshly migrated database: delete the newest account, and the next one gets a
    new id (SQLite without AUTOINCREMENT gave the deleted id again)."""
    migrate.upgrade(database_url)
    run(database_url, insert("alice"))
    bob = run(database_url, insert("bob"))
    run(database_url, execute("DELETE FROM users WHERE id = :id", id=bob))
    assert run(database_url, insert("carol")) == bob + 1


def test_migrating_a_database_with_rows_keeps_every_row_and_never_reuses_an_id(
        database_url: str) -> None:
    """A database at the previous revision, with rows: the upgrade keeps every row and
    column as it was, and from then on a deleted id is never given out again."""
    migrate.upgrade(database_url, PREVIOUS)
    ids = [run(database_url, insert(name, token_version=i, is_active=i != 1,
                                    email_verified=i == 2, role=("user", "admin", "viewer")[i]))
           for i, name in enumerate(("alice", "bob", "carol"))]
    before = run(database_url, everything)
    migrate.upgrade(database_url, REVISION)
    assert migrate.current(database_url) == REVISION
    assert run(database_url, everything) == before
    run(database_url, execute("DELETE FROM users WHERE id = :id", id=ids[-1]))
    assert run(database_url, insert("dave")) == ids[-1] + 1
    # The unique indexes came through the rebuild.
    with pytest.raises(sa.exc.IntegrityError):
        run(database_url, insert("alice", email="other@example.com",
                                 email_norm="other@example.com"))


def test_a_rebuild_interrupted_before_it_committed_can_be_run_again(tmp_path: Path) -> None:
    """SQLite: a copy cut off after creating its work table (the rows still in `users`)
    leaves that table behind; the next `authsvc migrate` completes, every row kept."""
    url = f"sqlite:///{tmp_path / 'auth.db'}"
    migrate.upgrade(url, PREVIOUS)
    run(url, insert("alice"))
    run(url, execute("CREATE TABLE _alembic_tmp_users (id INTEGER PRIMARY KEY)"))
    before = run(url, everything)
    migrate.upgrade(url, REVISION)
    assert run(url, everything) == before


def test_the_downgrade_keeps_every_row(database_url: str) -> None:
    """0003 undone: the rows stay (SQLite goes back to a plain INTEGER PRIMARY KEY)."""
    migrate.upgrade(database_url, REVISION)
    run(database_url, insert("alice"))
    before = run(database_url, everything)
    command.downgrade(migrate.alembic_config(database_url), PREVIOUS)
    assert migrate.current(database_url) == PREVIOUS
    assert run(database_url, everything) == before


def test_token_state_reads_version_active_flag_and_role(database_url: str) -> None:
    """The refresh's narrow point read (issue 9.7) answers the row's token version, active
    flag and role, typed, and None for an id nobody has."""
    migrate.upgrade(database_url)
    user_id = run(database_url, insert("alice", token_version=7, is_active=False, role="editor"))

    async def body(store: UserStore, db: Any) -> list[TokenState | None]:
        return [await store.token_state(user_id), await store.token_state(user_id + 1)]

    assert with_store(database_url, body) == [TokenState(7, False, "editor"), None]
