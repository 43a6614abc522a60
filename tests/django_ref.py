"""The Django reference's fixture (tests/fixtures/django_ref/: a database and tokens made by
the real Django 5.2 + simplejwt service, see its README) and the tests' ways to import it."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import asyncpg

from service.config import ADMIN_ROLE, MigrationSettings, Settings
from service.core.django_import import DjangoImport, ImportOptions, ImportSummary
from service.store.django_source import DjangoSource
from service.store.user_import import ImportTarget

FIXTURE = Path(__file__).parent / "fixtures" / "django_ref"
DATABASE = FIXTURE / "accounts.sqlite3"
TABLE = "accounts_user"
TOKENS: dict[str, Any] = json.loads((FIXTURE / "tokens.json").read_text(encoding="utf-8"))
USERS: dict[str, dict[str, Any]] = {u["username"]: u for u in TOKENS["users"]}
# One user per hash format, each registered on the reference while that hasher was first.
BY_FORMAT = {fmt: next(u for u in TOKENS["users"] if u["hasher"] == fmt and u.get("password"))
             for fmt in ("pbkdf2_sha256", "argon2", "bcrypt_sha256", "bcrypt", "scrypt")}
IMPORTABLE = 15  # of the fixture's 19 rows; the other four are skipped, one per reason
SKIPPED = {"username_has_at": 1, "email_missing": 1, "email_conflict": 1,
           "username_conflict": 1}


def copy_fixture(directory: Path) -> Path:
    """A writable copy of the reference's database (tests that change the Django side)."""
    path = directory / "django.sqlite3"
    shutil.copy(DATABASE, path)
    return path


def migration_settings(until: float | None = None) -> MigrationSettings:
    """Accept the fixture's tokens until `until` (default: a day from now)."""
    moment = dt.datetime.fromtimestamp(until if until is not None else time.time() + 86400,
                                       dt.UTC)
    return MigrationSettings(simplejwt_signing_key=TOKENS["signing_key"],
                             simplejwt_algorithm=TOKENS["algorithm"],
                             simplejwt_user_id_claim=TOKENS["user_id_claim"],
                             accept_until=moment.isoformat().replace("+00:00", "Z"))


def run_import(settings: Settings, source_url: str | Path = DATABASE, *, dry_run: bool = False,
               table: str = TABLE, columns: dict[str, str] | None = None,
               blacklist: bool = True) -> ImportSummary:
    """`authsvc import-django` as the command runs it, in this process."""
    options = ImportOptions(known_roles=settings.auth.known_roles(),
                            default_role=settings.auth.default_role, admin_role=ADMIN_ROLE,
                            dry_run=dry_run, batch_size=4, blacklist=blacklist)

    async def run() -> ImportSummary:
        target = ImportTarget(settings.database.url)
        try:
            async with DjangoSource(str(source_url), table, columns) as source:
                return await DjangoImport(source, target, options).run()
        finally:
            await target.close()

    return asyncio.run(run())


def session_of(user: dict[str, Any], logged_out: bool = False) -> dict[str, Any]:
    """One of the user's browser sessions on the reference (logged out there, or not)."""
    return next(s for s in user["sessions"] if s["logged_out"] == logged_out)


# -- the fixture in PostgreSQL -----------------------------------------------------------------
_PG_TYPES = {"integer": "bigint", "bool": "boolean", "datetime": "timestamptz",
             "varchar": "text", "text": "text", "char": "text", "bigint": "bigint"}
_COPIED = (TABLE, "token_blacklist_outstandingtoken", "token_blacklist_blacklistedtoken")


def _pg_type(declared: str) -> str:
    base = declared.lower().split("(")[0].strip()
    return _PG_TYPES.get(base, "text")


def _pg_value(value: Any, pg_type: str) -> Any:
    if value is None:
        return None
    if pg_type == "boolean":
        return bool(value)
    if pg_type == "timestamptz":
        moment = dt.datetime.fromisoformat(str(value))
        return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment
    return value


def copy_fixture_to_postgres(url: str) -> None:
    """The reference's three tables, rows and all, in the PostgreSQL database at `url`."""
    with closing(sqlite3.connect(DATABASE)) as db:
        tables = {}
        for name in _COPIED:
            columns = [(r[1], _pg_type(r[2])) for r in db.execute(f"PRAGMA table_info({name})")]
            rows = db.execute(f"SELECT {', '.join(c for c, _ in columns)} FROM {name}").fetchall()
            tables[name] = (columns, rows)

    async def copy() -> None:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            for name, (columns, rows) in tables.items():
                await conn.execute(f'DROP TABLE IF EXISTS "{name}"')
                await conn.execute(f'CREATE TABLE "{name}" ('
                                   + ", ".join(f'"{c}" {t}' for c, t in columns) + ")")
                await conn.copy_records_to_table(name, records=[
                    tuple(_pg_value(v, t) for v, (_, t) in zip(row, columns, strict=True))
                    for row in rows], columns=[c for c, _ in columns])
        finally:
            await conn.close()

    asyncio.run(copy())


def drop_fixture_from_postgres(url: str) -> None:
    async def drop() -> None:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            for name in _COPIED:
                await conn.execute(f'DROP TABLE IF EXISTS "{name}"')
        finally:
            await conn.close()

    asyncio.run(drop())
