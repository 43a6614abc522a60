"""SQLite for `databases`, with open connections kept for reuse.

`databases`' own SQLite backend opens a new aiosqlite connection for every query and closes it
afterwards: a new thread, a new sqlite3 handle, the schema read again. That is about half a
millisecond of CPU per query, on the core that also hashes passwords (login, register).
Here up to IDLE_CONNECTIONS connections wait between queries instead. The number open at once
is not capped: `databases` skips handing a connection back when a transaction's BEGIN, COMMIT
or ROLLBACK itself fails, and a cap would lose that slot for good (every query would then
wait forever); uncapped, such a connection is merely not reused. A connection handed back
inside a transaction is closed, never reused; so is every one handed back after close(), and
close() stops any still out (each runs a non-daemon thread that would keep the process from
exiting).
"""

from __future__ import annotations

from typing import Any

import aiosqlite
from databases import Database
from databases.backends.sqlite import SQLiteBackend, SQLitePool
from databases.core import DatabaseURL

IDLE_CONNECTIONS = 8


class ReusingSQLitePool(SQLitePool):
    def __init__(self, url: DatabaseURL, **options: Any) -> None:
        super().__init__(url, **options)
        self._idle: list[aiosqlite.Connection] = []
        self._out: set[aiosqlite.Connection] = set()  # opened, not closed: idle or in use
        self._open = False

    def open(self) -> None:
        self._open = True

    async def acquire(self) -> aiosqlite.Connection:
        if self._idle:
            return self._idle.pop()
        connection = await super().acquire()
        self._out.add(connection)
        return connection

    async def release(self, connection: aiosqlite.Connection) -> None:
        if self._open and len(self._idle) < IDLE_CONNECTIONS and not connection.in_transaction:
            self._idle.append(connection)
        else:
            self._out.discard(connection)
            await super().release(connection)

    async def close(self) -> None:
        self._open = False
        idle, self._idle = self._idle, []
        for connection in idle:
            self._out.discard(connection)
            await super().release(connection)
        # Never handed back (databases skips that when a ROLLBACK fails) or still in use:
        # stop their threads, or the process could not exit.
        leftover, self._out = self._out, set()
        for connection in leftover:
            connection.stop()


class ReusingSQLiteBackend(SQLiteBackend):
    def __init__(self, database_url: DatabaseURL | str, **options: Any) -> None:
        super().__init__(database_url, **options)
        self._pool = ReusingSQLitePool(self._database_url, **self._options)

    async def connect(self) -> None:
        assert isinstance(self._pool, ReusingSQLitePool)
        await super().connect()
        self._pool.open()

    async def disconnect(self) -> None:
        assert isinstance(self._pool, ReusingSQLitePool)
        await self._pool.close()
        await super().disconnect()


class SQLDatabase(Database):
    """`databases.Database`, with SQLite URLs served by ReusingSQLiteBackend."""

    SUPPORTED_BACKENDS = {**Database.SUPPORTED_BACKENDS,
                          "sqlite": f"{__name__}:ReusingSQLiteBackend"}
