"""SQLite for `databases`, with open connections kept for reuse.

`databases`' own SQLite backend opens a new aiosqlite connection for every query and closes it
afterwards: a new thread, a new sqlite3 handle, the schema read again. That is about half a
millisecond of CPU per query, on the core that also hashes passwords (login, register).
Here at most CONNECTIONS stay open and are reused; a query that finds all of them busy waits
for one (SQLite runs one writer at a time anyway, and every connection is a thread). A
connection handed back inside a transaction (an error mid-way) is closed, not reused.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiosqlite
from databases import Database
from databases.backends.sqlite import SQLiteBackend, SQLitePool
from databases.core import DatabaseURL

CONNECTIONS = 4


class ReusingSQLitePool(SQLitePool):
    def __init__(self, url: DatabaseURL, **options: Any) -> None:
        super().__init__(url, **options)
        self._idle: list[aiosqlite.Connection] = []
        self._slots: asyncio.Semaphore | None = None  # made on first use, in the app's loop

    async def acquire(self) -> aiosqlite.Connection:
        if self._slots is None:
            self._slots = asyncio.Semaphore(CONNECTIONS)
        await self._slots.acquire()
        try:
            return self._idle.pop() if self._idle else await super().acquire()
        except BaseException:
            self._slots.release()
            raise

    async def release(self, connection: aiosqlite.Connection) -> None:
        assert self._slots is not None
        try:
            if connection.in_transaction:
                await super().release(connection)
            else:
                self._idle.append(connection)
        finally:
            self._slots.release()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await super().release(connection)


class ReusingSQLiteBackend(SQLiteBackend):
    def __init__(self, database_url: DatabaseURL | str, **options: Any) -> None:
        super().__init__(database_url, **options)
        self._pool = ReusingSQLitePool(self._database_url, **self._options)

    async def disconnect(self) -> None:
        assert isinstance(self._pool, ReusingSQLitePool)
        await self._pool.close()
        await super().disconnect()


class SQLDatabase(Database):
    """`databases.Database`, with SQLite URLs served by ReusingSQLiteBackend."""

    SUPPORTED_BACKENDS = {**Database.SUPPORTED_BACKENDS,
                          "sqlite": f"{__name__}:ReusingSQLiteBackend"}
