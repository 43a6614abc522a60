"""Schema migrations: Alembic on the Core metadata, run with the service's own async drivers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config

from service.store.datadir import private_file

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def sqlalchemy_url(database_url: str) -> str:
    """`databases` URLs name no driver; SQLAlchemy's async engine needs one."""
    if database_url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + database_url[len("sqlite:"):]
    for scheme in ("postgresql://", "postgres://"):
        if database_url.startswith(scheme):
            return "postgresql+asyncpg://" + database_url[len(scheme):]
    raise ValueError(f"unsupported database URL: {database_url}")


def sqlite_path(database_url: str) -> Path | None:
    if not database_url.startswith("sqlite:///"):
        return None
    return Path(database_url[len("sqlite:///"):].split("?", 1)[0])


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database to `revision`, keeping every row; creates a SQLite file if needed."""
    path = sqlite_path(database_url)
    if path is not None and str(path) != ":memory:":
        private_file(path)  # owner-only; SQLite gives its -wal and -shm files the same mode
        with sqlite3.connect(path) as conn:  # WAL: readers never wait for the one writer
            conn.execute("PRAGMA journal_mode=WAL")
    command.upgrade(alembic_config(database_url), revision)


def current(database_url: str) -> str | None:
    """The revision the database is at (None before the first migration)."""
    path = sqlite_path(database_url)
    if path is not None and not path.exists():
        return None  # reading must not create the file (or fail on a missing directory)
    import asyncio

    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.ext.asyncio import create_async_engine

    async def read() -> str | None:
        engine = create_async_engine(sqlalchemy_url(database_url))
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: MigrationContext.configure(sync).get_current_revision())
        finally:
            await engine.dispose()

    return asyncio.run(read())
