"""sqlite_pool.py: SQLite connections are reused between queries, never mid-transaction."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from service.sqlite_pool import CONNECTIONS, ReusingSQLiteBackend, SQLDatabase


def sqlite_threads() -> int:
    """aiosqlite runs each connection in a thread of its own."""
    return sum(1 for t in threading.enumerate() if t.is_alive() and "_connection_worker_thread" in t.name)


def test_sequential_queries_share_one_connection(tmp_path: Path) -> None:
    async def main() -> tuple[int, int, int, list[int]]:
        db = SQLDatabase(f"sqlite:///{tmp_path / 'a.db'}")
        await db.connect()
        assert isinstance(db._backend, ReusingSQLiteBackend)
        await db.execute("CREATE TABLE t (n INTEGER)")
        before = sqlite_threads()
        for n in range(50):
            await db.execute("INSERT INTO t (n) VALUES (:n)", {"n": n})
        during = sqlite_threads()
        rows = [row[0] for row in await db.fetch_all("SELECT n FROM t ORDER BY n")]
        await db.disconnect()
        await asyncio.sleep(0.1)
        return before, during, sqlite_threads(), rows

    before, during, after, rows = asyncio.run(main())
    assert rows == list(range(50))
    assert during == before  # 50 queries, no new connection (thread) beyond the first
    assert after == before - 1  # disconnect closed the idle one


def test_concurrent_queries_never_open_more_than_the_limit(tmp_path: Path) -> None:
    async def main() -> tuple[int, int, int]:
        db = SQLDatabase(f"sqlite:///{tmp_path / 'b.db'}")
        await db.connect()
        start = sqlite_threads()

        most = 0

        async def query() -> None:
            nonlocal most
            await db.fetch_one("SELECT 1")
            most = max(most, sqlite_threads() - start)

        await asyncio.gather(*(asyncio.create_task(query()) for _ in range(40)))
        await asyncio.sleep(0.1)
        kept = sqlite_threads() - start
        await db.disconnect()
        await asyncio.sleep(0.1)
        return most, kept, sqlite_threads() - start

    most, kept, left = asyncio.run(main())
    assert most == kept == CONNECTIONS  # 40 at once: the limit opened, then reused
    assert left == 0


def test_a_transaction_that_fails_is_rolled_back_and_its_connection_not_reused(
        tmp_path: Path) -> None:
    async def main() -> list[int]:
        db = SQLDatabase(f"sqlite:///{tmp_path / 'c.db'}")
        await db.connect()
        await db.execute("CREATE TABLE t (n INTEGER)")
        try:
            async with db.transaction():
                await db.execute("INSERT INTO t (n) VALUES (1)")
                raise RuntimeError("half-way")
        except RuntimeError:
            pass
        await db.execute("INSERT INTO t (n) VALUES (2)")
        rows = [row[0] for row in await db.fetch_all("SELECT n FROM t")]
        await db.disconnect()
        return rows

    assert asyncio.run(main()) == [2]
