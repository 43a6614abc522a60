"""Reads a Django project's database (SQLite or PostgreSQL) for `authsvc import-django`: its
user table, in id order, a batch at a time, and simplejwt's token blacklist. Read only."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from service.store.migrate import sqlalchemy_url

# authsvc's fields and the Django columns they are read from unless mapped otherwise.
FIELDS = ("username", "email", "password", "is_active", "date_joined", "display_name", "role")
REQUIRED = ("username", "email", "password")
OUTSTANDING = "token_blacklist_outstandingtoken"
BLACKLISTED = "token_blacklist_blacklistedtoken"


class SourceError(Exception):
    """The Django database or table cannot be read as asked; the message says why."""


@dataclass(frozen=True)
class DjangoUser:
    """One row of the Django user table, as authsvc reads it."""

    id: int
    username: str
    email: str
    password: str
    is_active: bool
    date_joined: dt.datetime | None
    display_name: str | None  # None: no such column (nor first_name/last_name)
    role: str | None          # None: no role column (is_superuser decides)
    is_superuser: bool
    problem: str | None = None  # a column authsvc cannot read: id_invalid, date_invalid


@dataclass(frozen=True)
class RevokedToken:
    """A refresh token simplejwt blacklisted: its jti, its user's Django id, its expiry."""

    jti: str
    legacy_id: int
    expires_at: int


def source_url(database_url: str) -> str:
    """An SQLAlchemy URL for a Django DATABASE_URL (sqlite:///…, postgresql://…) or a file."""
    if "://" not in database_url:
        if not Path(database_url).is_file():
            raise SourceError(f"{database_url}: no such file")
        return sqlalchemy_url(f"sqlite:///{Path(database_url).absolute()}")
    try:
        return sqlalchemy_url(database_url)
    except ValueError as exc:
        raise SourceError(f"{database_url}: expected sqlite:/// or postgresql://") from exc


_MAX_ID = 2 ** 63 - 1


def _utc(value: object) -> dt.datetime:
    """Django keeps UTC (USE_TZ); SQLite's copies carry no offset. ValueError for a value
    that is no time (SQLite holds whatever was written: "0000-00-00", "soon")."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise ValueError("not a date")
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _legacy_id(value: object) -> int | None:
    """A Django id authsvc can keep (and old tokens can name): a positive 64-bit integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    return value if isinstance(value, int) and 1 <= value <= _MAX_ID else None


def _columns_of(sync: sa.Connection, name: str) -> sa.TableClause:
    """The table's columns by name only: Django's expression indexes (Lower(email)) are
    nothing SQLAlchemy reflects, nor needed to read rows."""
    return sa.table(name, *(sa.column(c["name"]) for c in sa.inspect(sync).get_columns(name)))


class DjangoSource:
    """The Django user table named `table`, its columns mapped to authsvc's fields by name
    unless `columns` maps them (authsvc field -> Django column)."""

    def __init__(self, database_url: str, table: str = "auth_user",
                 columns: Mapping[str, str] | None = None) -> None:
        self._url = source_url(database_url)
        self._table_name = table
        self._mapping = dict(columns or {})
        unknown = sorted(set(self._mapping) - set(FIELDS))
        if unknown:
            raise SourceError(f"--column {unknown[0]}: not a field ({', '.join(FIELDS)})")
        self._engine: AsyncEngine | None = None
        self._table: sa.TableClause | None = None
        self._select: list[Any] = []
        self._tables: set[str] = set()

    async def __aenter__(self) -> DjangoSource:
        self._engine = create_async_engine(self._url)
        try:
            async with self._engine.connect() as conn:
                self._tables = set(await conn.run_sync(
                    lambda sync: sa.inspect(sync).get_table_names()))
                if self._table_name not in self._tables:
                    raise SourceError(f"no table {self._table_name!r} in the Django database "
                                      "(--table names it)")
                self._table = await conn.run_sync(_columns_of, self._table_name)
        except BaseException:
            await self._engine.dispose()
            raise
        self._select = self._columns(self._table)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._engine is not None:
            await self._engine.dispose()

    def _columns(self, table: sa.TableClause) -> list[Any]:
        """The SELECT list, each labelled with authsvc's field name."""
        have = set(table.c.keys())
        picked: list[Any] = [table.c.id.label("id")]
        for name in FIELDS:
            column = self._mapping.get(name, name)
            if column in have:
                picked.append(table.c[column].label(name))
            elif name in self._mapping or name in REQUIRED:
                raise SourceError(f"table {self._table_name!r} has no column {column!r} "
                                  f"for {name} (--column {name}=COLUMN maps it)")
        if "display_name" not in self._mapping and "display_name" not in have:
            # Django's own auth_user: the display name is first_name + last_name.
            picked += [table.c[c].label(c) for c in ("first_name", "last_name") if c in have]
        if "is_superuser" in have:
            picked.append(table.c.is_superuser.label("is_superuser"))
        return picked

    def _conn(self) -> AsyncConnection:
        assert self._engine is not None
        return self._engine.connect()

    async def count(self) -> int:
        assert self._table is not None
        async with self._conn() as conn:
            return int((await conn.execute(
                sa.select(sa.func.count()).select_from(self._table))).scalar_one())

    async def batches(self, size: int) -> AsyncIterator[list[DjangoUser]]:
        """Every user, in id order, `size` at a time (keyset pages: no OFFSET scans)."""
        assert self._table is not None
        last = None
        async with self._conn() as conn:
            while True:
                query = sa.select(*self._select).order_by(self._table.c.id).limit(size)
                if last is not None:
                    query = query.where(self._table.c.id > last)
                rows = (await conn.execute(query)).mappings().all()
                if not rows:
                    return
                last = rows[-1]["id"]
                yield [self._user(dict(row)) for row in rows]

    @staticmethod
    def _user(row: Mapping[str, Any]) -> DjangoUser:
        """A row as authsvc reads it; a column it cannot read is the row's `problem`, never an
        exception (every re-run would stop at the same row)."""
        problem = None
        legacy_id = _legacy_id(row["id"])
        if legacy_id is None:
            problem, legacy_id = "id_invalid", 0
        joined = None
        if row.get("date_joined") is not None:
            try:
                joined = _utc(row["date_joined"])
            except (ValueError, TypeError, OverflowError):
                problem = problem or "date_invalid"
        display_name = row.get("display_name")
        if display_name is None and ("first_name" in row or "last_name" in row):
            display_name = " ".join(
                str(row.get(part) or "").strip() for part in ("first_name", "last_name")).strip()
        return DjangoUser(
            id=legacy_id, username=str(row["username"] or ""),
            email=str(row["email"] or ""), password=str(row["password"] or ""),
            is_active=bool(row.get("is_active", True)),
            date_joined=joined,
            display_name=None if display_name is None else str(display_name),
            role=None if row.get("role") is None else str(row["role"]),
            is_superuser=bool(row.get("is_superuser", False)), problem=problem)

    def has_blacklist(self) -> bool:
        return OUTSTANDING in self._tables and BLACKLISTED in self._tables

    async def revoked_tokens(self, now: float) -> tuple[list[RevokedToken], int]:
        """simplejwt's blacklisted refresh tokens that have not expired yet, and how many
        entries could not be read (no jti, no user id or expiry authsvc can use)."""
        if not self.has_blacklist():
            return [], 0
        async with self._conn() as conn:
            outstanding = await conn.run_sync(_columns_of, OUTSTANDING)
            blacklisted = await conn.run_sync(_columns_of, BLACKLISTED)
            rows = (await conn.execute(
                sa.select(outstanding.c.jti, outstanding.c.user_id, outstanding.c.expires_at)
                .join(blacklisted, blacklisted.c.token_id == outstanding.c.id)
                .where(outstanding.c.user_id.is_not(None)))).all()
        found, unreadable = [], 0
        for jti, user_id, expires in rows:
            legacy_id = _legacy_id(user_id)
            try:
                expires_at = _utc(expires).timestamp() if expires is not None else None
            except (ValueError, TypeError, OverflowError):
                expires_at = None
            if (legacy_id is None or expires_at is None or not isinstance(jti, str)
                    or not 1 <= len(jti) <= 255):
                unreadable += 1
            elif expires_at > now:
                found.append(RevokedToken(jti, legacy_id, int(expires_at)))
        return found, unreadable
