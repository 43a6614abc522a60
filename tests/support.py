"""What tests stand on: live servers, a real worker process, settings, SQL and Redis clean-up."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import closing, contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import redis
import uvicorn
from aiosmtpd.controller import Controller
from databases import Database
from rq import Queue

from service.app import database
from service.config import (
    AlertSettings,
    AuthSettings,
    DatabaseSettings,
    JwtSettings,
    LockoutSettings,
    MfaSettings,
    PasswordSettings,
    RateLimitSettings,
    RedisSettings,
    Settings,
    SmtpSettings,
    WorkerSettings,
)
from service.http.server import uvicorn_options
from service.local.embedded_redis import SOCKET_NAME
from service.store import migrate
from service.store.datadir import private_dir
from service.store.keys import RedisKeys
from service.store.users import UserStore

ROOT = Path(__file__).resolve().parent.parent
SECRET = "test-secret-" + "x" * 40
MFA_KEY = "test-mfa-key-" + "k" * 40
# Cheap argon2id parameters: the suite hashes hundreds of passwords.
FAST_PASSWORDS = PasswordSettings(time_cost=1, memory_cost=1024, parallelism=1,
                                  max_concurrent_hashes=2)

T = TypeVar("T")


class Mailbox:
    """Messages an in-process aiosmtpd server received; optionally refuses the first N."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse_next = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's hook)
        if self.refuse_next > 0:
            self.refuse_next -= 1
            return "451 Requested action aborted: try again later"
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@contextmanager
def smtp_sink() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server (aiosmtpd) on a free port, collecting into a Mailbox."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


class Clock:
    """An app's injected clock: tests move time by assigning `now`."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """The app on a real uvicorn server in a thread, on a socket bound to a free port."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False,
                                **uvicorn_options(app.state.settings.server))
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.sock.close()


def worker_env(settings: Settings) -> dict[str, str]:
    """Environment for a real `authsvc worker` process serving this test's queue."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}
    env.update({
        "AUTH_REDIS_URL": settings.redis.url,
        "AUTH_REDIS_PREFIX": settings.redis.prefix,
        "AUTH_SMTP_HOST": settings.smtp.host,
        "AUTH_SMTP_PORT": str(settings.smtp.port),
        "AUTH_SMTP_TIMEOUT": "5",
        "AUTH_WORKER_QUEUE": settings.worker.queue,
        "AUTH_WORKER_RETRY_INTERVALS": ",".join(map(str, settings.worker.retry_intervals)),
        "AUTH_DATABASE_URL": settings.database.url,
        "AUTH_JWT_SECRET": settings.jwt.secret,
        "AUTH_DATA_DIR": str(settings.data_dir),
        "PYTHONPATH": str(ROOT),
    })
    return env


def run_worker(settings: Settings, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a real RQ worker in burst mode: it sends what is queued, then exits."""
    return subprocess.run([sys.executable, "-m", "service.cli", "worker", "--burst"],
                          env=worker_env(settings), cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def wait_for_jobs(settings: Settings, connection: redis.Redis, count: int) -> list[str]:
    """Mail is queued by a background task after the answer: wait, bounded, for `count` jobs
    on the test app's queue; their ids."""
    queue = Queue(settings.worker.queue, connection=connection)
    deadline = time.monotonic() + 10
    while queue.count < count:
        assert time.monotonic() < deadline, f"{queue.count} of {count} mail jobs were queued"
        time.sleep(0.02)
    return list(queue.job_ids)


def wait_for_mail_count(settings: Settings, connection: redis.Redis, address: str,
                        count: int) -> None:
    """Mails to `address` are counted by a background task after the answer: wait, bounded,
    until `count` have been (every background task has run)."""
    key = RedisKeys(settings.redis.prefix).mails(address)
    deadline = time.monotonic() + 10
    while int(connection.get(key) or 0) < count:
        assert time.monotonic() < deadline, "the background tasks never ran"
        time.sleep(0.02)


def reset_token_from(message: EmailMessage) -> str:
    """The token in the link of a password reset email."""
    text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    link = re.search(r"https?://\S+", text)
    assert link, text
    return parse_qs(urlparse(link.group(0)).query)["token"][0]


def sql(settings: Settings, statement: str, *args: Any) -> list[sqlite3.Row]:
    """Run one statement on the test app's SQLite file and commit; its rows."""
    with closing(sqlite3.connect(settings.database.url.removeprefix("sqlite:///"))) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(statement, args).fetchall()
        db.commit()
    return rows


def user_row(settings: Settings, username: str = "alice") -> sqlite3.Row:
    """The users row of `username`, which must exist."""
    rows = sql(settings, "SELECT * FROM users WHERE username = ?", username)
    assert rows, username
    return rows[0]


def settle(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    """Let the server finish logging a crash before the test fails and pytest formats it:
    uvicorn logs a 500's traceback after the response, and on CPython 3.11 < 3.11.8
    ast.parse (used by traceback and pytest alike) is not thread-safe (gh-106905)."""
    for _ in range(3):  # answered: the event loop has finished the previous request's task
        try:
            client.get("/api/v1/auth/nope/")
            break
        except httpx.TransportError:  # uvicorn closes a connection whose app raised
            continue
    deadline, seen = time.monotonic() + 2, -1
    while time.monotonic() < deadline:
        records = caplog.get_records("call")
        if len(records) == seen and all(r.exc_text or not r.exc_info for r in records):
            return
        seen = len(records)
        time.sleep(0.05)


def migrated_template(directory: Path) -> Path:
    """A SQLite file migrated to head, made once a session to be copied: running Alembic for
    every test cost more than most tests do."""
    path = directory / "migrated.db"
    migrate.upgrade(f"sqlite:///{path}")
    with closing(sqlite3.connect(path)) as conn:  # everything in the main file, no -wal left
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def migrated_sqlite(template: Path, path: Path) -> str:
    """A fresh migrated SQLite database at `path` (a copy of `template`, mode and all): its URL."""
    private_dir(path.parent)
    shutil.copy(template, path)
    return f"sqlite:///{path}"


def app_settings(tmp: Path, redis_url: str, prefix: str, smtp_port: int, template: Path,
                 smtp_timeout: int = 5) -> Settings:
    """Settings for a test app on a fresh, migrated SQLite file and a key prefix of its own:
    cheap argon2, and rate limits, lockout, alerts and verification emails off (the tests
    of those switch them on)."""
    database_url = migrated_sqlite(template, tmp / "auth.db")
    return Settings(
        data_dir=tmp / "data",
        database=DatabaseSettings(url=database_url),
        redis=RedisSettings(url=redis_url, prefix=prefix),
        jwt=JwtSettings(secret=SECRET),
        passwords=FAST_PASSWORDS,
        rate_limit=RateLimitSettings(enabled=False),
        lockout=LockoutSettings(enabled=False),
        auth=AuthSettings(verify_emails=False),
        alerts=AlertSettings(enabled=False),
        smtp=SmtpSettings(port=smtp_port, timeout=smtp_timeout),
        worker=WorkerSettings(queue=f"{prefix}mail", retry_intervals=(0, 0)),
        mfa=MfaSettings(encryption_key=MFA_KEY),
    )


def delete_prefixed(redis_url: str, prefix: str) -> None:
    """Delete this test's keys, and only those: nobody else's data is flushed. RQ's keys for
    the test's queue (named from the prefix) go too: RQ keeps a queue's finished and failed
    registries with no TTL, and every run would leave them behind."""
    client = redis.Redis.from_url(redis_url)
    keys = [*client.scan_iter(match=f"{prefix}*", count=1000),
            *client.scan_iter(match=f"rq:*:{prefix}*", count=1000)]
    if keys:
        client.delete(*keys)
    queues = list(client.sscan_iter("rq:queues", match=f"rq:queue:{prefix}*"))
    if queues:  # RQ's own index of every queue it has seen
        client.srem("rq:queues", *queues)
    client.close()


def process_state(pid: int) -> str:
    """The state letter in /proc/PID/stat (Z: a zombie, gone but not reaped); OSError if none."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def valkey_pids(data_dir: Path) -> list[int]:
    """Live embedded Valkey servers on this data directory's socket (by their command line)."""
    needle = f"unixsocket:{data_dir.resolve() / SOCKET_NAME}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if needle in (proc / "cmdline").read_bytes() and process_state(int(proc.name)) != "Z":
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def with_store(url: str, body: Callable[[UserStore, Database], Awaitable[T]]) -> T:
    """Run `body` against a connected store built the way the app builds its database."""
    async def run() -> T:
        db = database(dataclasses.replace(Settings(), database=dataclasses.replace(
            Settings().database, url=url)))
        await db.connect()
        try:
            return await body(UserStore(db), db)
        finally:
            await db.disconnect()

    return asyncio.run(run())


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")


def messages(output: str) -> list[str]:
    """What a command said to the operator, leaving out its log records."""
    return [line for line in output.splitlines() if line.strip() and not LOG_LINE.match(line)]


def assert_private(root: Path) -> None:
    """`root` and everything in it are the owner's only: 0700 directories, 0600 files, and
    sockets no one else can reach."""
    assert stat.S_IMODE(root.stat().st_mode) == 0o700, root
    for path in root.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_socket():
            assert mode & 0o077 == 0, (path, oct(mode))
        else:
            assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
