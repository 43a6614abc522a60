"""sqlite_pool.py: SQLite connections are reused between queries, never mid-transaction."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

from service.store.sqlite_pool import IDLE_CONNECTIONS, ReusingSQLiteBackend, SQLDatabase


def sqlite_threads() -> int:
    """aiosqlite runs each connection in a thread of its own."""
    return sum(1 for t in threading.enumerate()
               if t.is_alive() and "_connection_worker_thread" in t.name)


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


def test_after_a_burst_at_most_the_idle_limit_stays_open(tmp_path: Path) -> None:
    async def main() -> tuple[int, int]:
        db = SQLDatabase(f"sqlite:///{tmp_path / 'b.db'}")
        await db.connect()
        start = sqlite_threads()

        async def query() -> None:
            await db.fetch_one("SELECT 1")

        await asyncio.gather(*(asyncio.create_task(query()) for _ in range(40)))
        await asyncio.sleep(0.1)
        kept = sqlite_threads() - start
        await db.disconnect()
        await asyncio.sleep(0.1)
        return kept, sqlite_threads() - start

    kept, left = asyncio.run(main())
    assert 1 <= kept <= IDLE_CONNECTIONS and left == 0


def test_transactions_whose_rollback_fails_never_block_later_queries(tmp_path: Path) -> None:
    """databases skips handing the connection back when ROLLBACK itself fails (here a
    trigger's RAISE(ROLLBACK); likewise a failing COMMIT): the pool must keep serving, and
    the connections it never got back must not keep the process from exiting."""
    script = tmp_path / "rollback.py"
    script.write_text(f"""
import asyncio, sys, threading
from service.store.sqlite_pool import IDLE_CONNECTIONS, SQLDatabase

async def main():
    db = SQLDatabase("sqlite:///" + {str(tmp_path / 'd.db')!r}, timeout=1)
    await db.connect()
    await db.execute("CREATE TABLE t (n INTEGER)")
    await db.execute("CREATE TRIGGER no7 BEFORE INSERT ON t WHEN NEW.n = 7 "
                     "BEGIN SELECT RAISE(ROLLBACK, 'seven'); END")

    async def request():
        try:
            async with db.transaction():
                await db.execute("INSERT INTO t (n) VALUES (7)")
        except Exception as exc:
            return type(exc).__name__
        return "committed"

    outcomes = [await asyncio.create_task(request()) for _ in range(2 * IDLE_CONNECTIONS)]
    async with asyncio.timeout(5):
        answer = await asyncio.create_task(db.fetch_val("SELECT 42"))
    await db.disconnect()
    kept = [t for t in threading.enumerate() if "_connection_worker_thread" in t.name]
    print(sorted(set(outcomes)), answer, all(t.daemon for t in kept), len(kept) > 0)

asyncio.run(main())
""")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr
    # The process printed and exited although connections were never handed back.
    assert done.stdout.split() == ["['OperationalError']", "42", "True", "True"]


def test_disconnect_leaves_no_connection_thread_behind(tmp_path: Path) -> None:
    """A query still running when the Database disconnects either finishes or fails, and its
    connection is closed either way: no thread is left to keep the process from exiting."""
    async def main() -> tuple[str, int]:
        start = sqlite_threads()
        db = SQLDatabase(f"sqlite:///{tmp_path / 'e.db'}")
        await db.connect()
        slow = asyncio.create_task(db.fetch_val(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) "
            "SELECT count(*) FROM c"))
        await asyncio.sleep(0.01)  # the query is running on its connection
        await db.disconnect()
        try:
            outcome = str(await slow)
        except ValueError as exc:  # aiosqlite: "Connection closed"
            outcome = str(exc)
        await asyncio.sleep(0.1)
        return outcome, sqlite_threads() - start

    outcome, left = asyncio.run(main())
    assert outcome in ("300000", "Connection closed") and left == 0


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
