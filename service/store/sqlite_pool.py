"""SQLite for `databases`, with open connections kept for reuse.

`databases`' own SQLite backend opens a new aiosqlite connection for every query and closes it
afterwards: a new thread, a new sqlite3 handle, the schema read again, about 0.6 ms of CPU on
the core that also hashes passwords. Refresh reads the user's row from the database on every
call, so that cost would land on the hot path (bench/README.md has the figures).

The rules, each simple enough to check by eye:
- acquire() hands out an idle connection, else opens one (no cap: a cap would lose a slot for
  good whenever `databases` keeps a connection, see below).
- release() keeps a connection for reuse only while the pool is open, it is outside a
  transaction and fewer than IDLE_CONNECTIONS wait; otherwise it closes it, the aiosqlite way
  (queued work first, then the handle, then the thread).
- close() closes the idle connections. One still in use is closed when it is handed back.
  The pool never stops a connection it does not hold: stopping one under a running query made
  its later close() wait for a thread that had already gone (the CI hang of issue 8).
- `databases` never hands back a connection whose COMMIT or ROLLBACK itself failed. Its
  thread is made a daemon when opened, so such a connection cannot keep the process alive.
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
        self._open = False

    def open(self) -> None:
        self._open = True

    async def acquire(self) -> aiosqlite.Connection:
        if self._idle:
            return self._idle.pop()
        connection = aiosqlite.connect(database=self._database, isolation_level=None,
                                       **self._options)
        connection._thread.daemon = True  # see the module's docstring
        return await connection

    async def release(self, connection: aiosqlite.Connection) -> None:
        if self._open and len(self._idle) < IDLE_CONNECTIONS and not connection.in_transaction:
            self._idle.append(connection)
        else:
            await connection.close()

    async def close(self) -> None:
        self._open = False
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()


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

    # `databases` declares it as an instance attribute; it is read from the class.
    SUPPORTED_BACKENDS = {**Database.SUPPORTED_BACKENDS,  # noqa: RUF012
                          "sqlite": f"{__name__}:ReusingSQLiteBackend"}
