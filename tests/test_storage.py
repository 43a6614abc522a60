"""users.py and migrate.py on SQLite and PostgreSQL: look-ups, uniqueness, versions, schema."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from databases import Database
from sqlalchemy.ext.asyncio import create_async_engine
from support import migrated_sqlite, with_store

from service.store import migrate
from service.store.users import DuplicateUser, User, UserStore, metadata, users

HASH = "$argon2id$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$aGFzaA"


@pytest.fixture
def migrated_url(database_url: str, sqlite_template: Path) -> str:
    path = migrate.sqlite_path(database_url)
    if path is not None:
        return migrated_sqlite(sqlite_template, path)
    migrate.upgrade(database_url)
    return database_url


async def make_user(store: UserStore, username: str = "Alice",
                    email: str = "alice@example.com", **overrides: Any) -> User:
    values = {"username": username, "email": email, "display_name": "Alice A.", "role": "user",
              "password_hash": HASH}
    values.update(overrides)
    return await store.create(**values)


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(migrate.alembic_config(url)).get_current_head()


def schema_differences(url: str) -> list[Any]:
    """What autogenerate would change to make the database match the Core metadata."""
    async def read() -> list[Any]:
        engine = create_async_engine(migrate.sqlalchemy_url(url))
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), metadata))
        finally:
            await engine.dispose()

    return asyncio.run(read())


# -- the store --------------------------------------------------------------------------------

def test_create_returns_the_stored_row(migrated_url: str) -> None:
    """create() answers the row as stored, and by_id finds the same."""
    async def body(store: UserStore, db: Database) -> tuple[User, User | None]:
        created = await make_user(store)
        return created, await store.by_id(created.id)

    created, found = with_store(migrated_url, body)
    assert (created.username, created.email, created.display_name, created.role) == (
        "Alice", "alice@example.com", "Alice A.", "user")
    assert created.is_active and created.token_version == 0 and created.password_hash == HASH
    assert found == created


def test_by_id_of_an_unknown_user_is_none(migrated_url: str) -> None:
    """by_id answers None for an id nobody has."""
    assert with_store(migrated_url, lambda store, db: store.by_id(424242)) is None


@pytest.mark.parametrize("identifier", [
    "Alice", "alice", "ALICE", "ａｌｉｃｅ", "Ａｌｉｃｅ",
    "alice@example.com", "ALICE@Example.COM",
])
def test_by_identifier_finds_username_or_email_in_any_case(migrated_url: str,
                                                           identifier: str) -> None:
    """by_identifier matches after NFKC and case folding, for usernames and emails."""
    async def body(store: UserStore, db: Database) -> tuple[User, User | None]:
        return await make_user(store), await store.by_identifier(identifier)

    created, found = with_store(migrated_url, body)
    assert found is not None and found.id == created.id


def test_by_identifier_finds_a_fullwidth_email(migrated_url: str) -> None:
    """A fullwidth email (＠ and letters) is the same email after NFKC."""
    async def body(store: UserStore, db: Database) -> User | None:
        await make_user(store)
        return await store.by_identifier("ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ")

    assert with_store(migrated_url, body) is not None


def test_by_identifier_does_not_cross_username_and_email(migrated_url: str) -> None:
    """An email never matches a username and an unknown name matches nothing."""
    async def body(store: UserStore, db: Database) -> list[User | None]:
        await make_user(store, username="bob", email="carol@example.com")
        return [await store.by_identifier("carol"), await store.by_identifier("bob@example.com"),
                await store.by_identifier("nobody")]

    assert with_store(migrated_url, body) == [None, None, None]


@pytest.mark.parametrize(("second", "field"), [
    ({"username": "ALICE", "email": "other@example.com"}, "username"),
    ({"username": "ａｌｉｃｅ", "email": "other@example.com"}, "username"),
    ({"username": "someone", "email": "Alice@EXAMPLE.com"}, "email"),
])
def test_duplicate_is_refused_naming_the_field(migrated_url: str, second: dict[str, str],
                                              field: str) -> None:
    """A username or email equal after folding raises DuplicateUser on that field."""
    async def body(store: UserStore, db: Database) -> tuple[str, int]:
        await make_user(store)
        with pytest.raises(DuplicateUser) as info:
            await make_user(store, **second)
        return info.value.field, len(await db.fetch_all(users.select()))

    assert with_store(migrated_url, body) == (field, 1)


def test_taken_names_what_is_in_use(migrated_url: str) -> None:
    """taken() lists username and/or email when their folded forms exist."""
    async def body(store: UserStore, db: Database) -> list[list[str]]:
        await make_user(store)
        return [await store.taken(username="ALICE", email="x@example.com"),
                await store.taken(username="x", email="ALICE@example.com"),
                await store.taken(username="alice", email="alice@example.com"),
                await store.taken(username="x", email="x@example.com")]

    assert with_store(migrated_url, body) == [["username"], ["email"], ["username", "email"], []]


def test_an_integrity_error_that_is_not_a_duplicate_is_not_reported_as_one(
        migrated_url: str) -> None:
    """A NOT NULL violation surfaces as itself, never as DuplicateUser."""
    async def body(store: UserStore, db: Database) -> BaseException:
        with pytest.raises(Exception) as info:
            await make_user(store, display_name=None)
        return info.value

    assert not isinstance(with_store(migrated_url, body), DuplicateUser)


def test_concurrent_creates_of_one_name_let_exactly_one_win(migrated_url: str) -> None:
    """Ten creates of one username at once on one Database: one row, nine DuplicateUser."""
    async def body(store: UserStore, db: Database) -> tuple[list[Any], int]:
        results = await asyncio.gather(
            *(make_user(store, username="Racer" if i % 2 else "RACER",
                        email=f"racer{i}@example.com") for i in range(10)),
            return_exceptions=True)
        return results, len(await db.fetch_all(users.select()))

    results, rows = with_store(migrated_url, body)
    winners = [r for r in results if isinstance(r, User)]
    losers = [r for r in results if isinstance(r, DuplicateUser)]
    assert len(winners) == 1 and rows == 1, results
    assert len(losers) == 9 and {e.field for e in losers} == {"username"}, results


def test_set_password_bumps_the_token_version(migrated_url: str) -> None:
    """Each set_password stores the hash and returns the row with a version one higher."""
    async def body(store: UserStore, db: Database) -> tuple[list[int], User | None]:
        user = await make_user(store)
        first = await store.set_password(user.id, "new-1", 0)
        second = await store.set_password(user.id, "new-2", 1)
        assert first is not None and second is not None
        return [first.token_version, second.token_version], await store.by_id(user.id)

    versions, user = with_store(migrated_url, body)
    assert versions == [1, 2]
    assert user is not None and (user.token_version, user.password_hash) == (2, "new-2")


def test_set_password_loses_to_a_write_that_landed_first(migrated_url: str) -> None:
    """A change computed against an old token version never overwrites a newer password
    (a reset confirmed while an attacker's password change was hashing)."""
    async def body(store: UserStore, db: Database) -> tuple[User | None, User | None]:
        user = await make_user(store)
        await store.set_password(user.id, "owner-reset", 0)
        late = await store.set_password(user.id, "attacker-change", 0)
        return late, await store.by_id(user.id)

    late, user = with_store(migrated_url, body)
    assert late is None
    assert user is not None and (user.token_version, user.password_hash) == (1, "owner-reset")


def test_upgrade_hash_applies_only_while_the_old_hash_matches(migrated_url: str) -> None:
    """A rehash lands on an unchanged password, and never over a password changed meanwhile."""
    async def body(store: UserStore, db: Database) -> tuple[User | None, User | None]:
        user = await make_user(store)
        await store.upgrade_hash(user.id, HASH, "rehashed")
        first = await store.by_id(user.id)
        await store.set_password(user.id, "changed", 0)
        await store.upgrade_hash(user.id, "rehashed", "stale-rehash")
        return first, await store.by_id(user.id)

    first, second = with_store(migrated_url, body)
    assert first is not None and first.password_hash == "rehashed"
    assert first.token_version == 0
    assert second is not None and second.password_hash == "changed"


def test_set_display_name_changes_only_that(migrated_url: str) -> None:
    """set_display_name changes the display name, leaving every other field."""
    async def body(store: UserStore, db: Database) -> tuple[User, User | None]:
        user = await make_user(store)
        await make_user(store, username="bob", email="bob@example.com")
        await store.set_display_name(user.id, "Ålice ✓")
        return user, await store.by_id(user.id)

    before, after = with_store(migrated_url, body)
    assert after == dataclasses.replace(before, display_name="Ålice ✓")


def test_set_active_false_deactivates_and_bumps_the_version(migrated_url: str) -> None:
    """Deactivating a user ends their tokens: is_active false and a new version."""
    async def body(store: UserStore, db: Database) -> User | None:
        user = await make_user(store)
        await store.set_active(user.id, False)
        return await store.by_id(user.id)

    user = with_store(migrated_url, body)
    assert user is not None and not user.is_active and user.token_version == 1


# -- migrations -------------------------------------------------------------------------------

def test_current_is_none_before_and_head_after_upgrade(database_url: str) -> None:
    """current() is None on an empty database and the head revision after upgrade()."""
    assert migrate.current(database_url) is None
    migrate.upgrade(database_url)
    head = head_revision(database_url)
    assert head is not None and migrate.current(database_url) == head


def test_upgrade_twice_is_idempotent_and_keeps_rows(migrated_url: str) -> None:
    """A second upgrade changes nothing and loses no row."""
    with_store(migrated_url, lambda store, db: make_user(store))
    migrate.upgrade(migrated_url)
    assert migrate.current(migrated_url) == head_revision(migrated_url)
    found = with_store(migrated_url, lambda store, db: store.by_identifier("alice"))
    assert found is not None and found.email == "alice@example.com"


def test_core_metadata_matches_the_migrated_schema(migrated_url: str) -> None:
    """Autogenerate finds no difference between users.metadata and the migrated database."""
    assert schema_differences(migrated_url) == []


def test_schema_comparison_would_see_a_difference(database_url: str) -> None:
    """The comparison is live: on an unmigrated database it reports the missing table."""
    differences = schema_differences(database_url)
    assert any(d[0] == "add_table" and d[1].name == "users" for d in differences), differences


def test_unique_indexes_exist_on_the_folded_columns(migrated_url: str) -> None:
    """The migrated database enforces uniqueness with indexes on username_norm and email_norm."""
    async def read() -> list[Any]:
        engine = create_async_engine(migrate.sqlalchemy_url(migrated_url))
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(lambda sync: sa.inspect(sync).get_indexes("users"))
        finally:
            await engine.dispose()

    unique = {tuple(i["column_names"]) for i in asyncio.run(read()) if i["unique"]}
    assert {("username_norm",), ("email_norm",)} <= unique
