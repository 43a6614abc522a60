"""authsvc's side of `authsvc import-django`: what already exists, and each batch written in
one transaction (SQLAlchemy Core on the async engine: executemany, not a row at a time)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from service.store.migrate import sqlalchemy_url
from service.store.users import legacy_tokens, legacy_users, users


class BatchConflict(Exception):
    """A batch collided with a row written meanwhile (a registration during the import)."""


@dataclass(frozen=True)
class Existing:
    """What authsvc already holds for one batch of Django users."""

    # legacy id -> (user id, display_name) of users imported before
    imported: Mapping[int, tuple[int, str]]
    deleted: Collection[int]          # legacy ids imported before whose account is gone
    usernames: Collection[str]        # folded usernames taken
    emails: Collection[str]           # folded emails taken


@dataclass
class Batch:
    """One batch's writes."""

    new_users: list[dict[str, Any]] = field(default_factory=list)
    display_names: list[tuple[int, str]] = field(default_factory=list)  # (user id, new name)


class ImportTarget:
    def __init__(self, database_url: str) -> None:
        self._sqlite = database_url.startswith("sqlite")
        # PostgreSQL caches a generic plan for the batch look-ups after five runs, made while
        # `users` may still be empty: a sequential scan it then keeps as the table grows
        # (270 users/s at 100,000, bench/README.md). Plans made per query see the table.
        options = {} if self._sqlite else {
            "connect_args": {"server_settings": {"plan_cache_mode": "force_custom_plan"}}}
        self._engine: AsyncEngine = create_async_engine(sqlalchemy_url(database_url), **options)
        self._written = 0
        self._analyzed_at = 0

    async def close(self) -> None:
        await self._engine.dispose()

    async def existing(self, legacy_ids: list[int], usernames: list[str],
                       emails: list[str]) -> Existing:
        async with self._engine.connect() as conn:
            imported = {
                int(r.legacy_id): (int(r.id), str(r.display_name))
                for r in await conn.execute(
                    sa.select(users.c.legacy_id, users.c.id, users.c.display_name)
                    .where(users.c.legacy_id.in_(legacy_ids)))}
            ever = {int(v) for v in (await conn.execute(
                sa.select(legacy_users.c.legacy_id)
                .where(legacy_users.c.legacy_id.in_(legacy_ids)))).scalars()}
            taken_names = set((await conn.execute(sa.select(users.c.username_norm).where(
                users.c.username_norm.in_(usernames)))).scalars())
            taken_emails = set((await conn.execute(sa.select(users.c.email_norm).where(
                users.c.email_norm.in_(emails)))).scalars())
        return Existing(imported, ever - set(imported), taken_names, taken_emails)

    async def write(self, batch: Batch, imported_at: dt.datetime) -> None:
        """The batch's new users (and their ids' record) and display names, whole or not at
        all; BatchConflict when a unique index refuses it."""
        try:
            async with self._engine.begin() as conn:
                if batch.new_users:
                    await conn.execute(users.insert(), batch.new_users)
                    await conn.execute(legacy_users.insert(), [
                        {"legacy_id": row["legacy_id"], "imported_at": imported_at}
                        for row in batch.new_users])
                if batch.display_names:
                    await conn.execute(
                        users.update().where(users.c.id == sa.bindparam("uid"))
                        .values(display_name=sa.bindparam("name")),
                        [{"uid": uid, "name": name} for uid, name in batch.display_names])
        except IntegrityError as exc:
            raise BatchConflict(str(exc.orig)) from exc
        self._written += len(batch.new_users)
        if not self._sqlite and self._written >= 2 * max(self._analyzed_at, 500):
            # Statistics as the table doubles, so the look-ups use their indexes (a table
            # never analysed is planned as tiny: a scan, 27 ms a look-up at 100,000 rows).
            async with self._engine.begin() as conn:
                await conn.execute(sa.text("ANALYZE users, legacy_users"))
            self._analyzed_at = self._written

    async def revoked_already(self, jtis: list[str]) -> set[str]:
        async with self._engine.connect() as conn:
            return set((await conn.execute(sa.select(legacy_tokens.c.jti).where(
                legacy_tokens.c.jti.in_(jtis) & legacy_tokens.c.revoked))).scalars())

    async def revoke_tokens(self, rows: list[dict[str, Any]]) -> None:
        """Old refresh tokens blacklisted on the Django side: refused here too (a token
        already used here keeps its session record, now revoked)."""
        insert = (sqlite.insert(legacy_tokens) if self._sqlite
                  else postgresql.insert(legacy_tokens))
        statement = insert.on_conflict_do_update(index_elements=[legacy_tokens.c.jti],
                                                 set_={"revoked": True})
        async with self._engine.begin() as conn:
            await conn.execute(statement, rows)
