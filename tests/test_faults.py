"""Faults: Redis or the database down is a 503 that heals by itself; a killed worker loses no email.

Every test here starts the servers it breaks: its own Valkey (never the shared Redis on 6379)
and, for PostgreSQL, a TCP forwarder in front of the test server that it can cut and restore.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis
from api import API, USER, bearer, login, register
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry
from starlette.requests import Request
from starlette.routing import Route
from support import LiveServer, Mailbox, run_worker, settle, worker_env

from service.app import create_app
from service.config import CorsSettings, Rate, RateLimitSettings, Settings
from service.local import embedded_redis
from service.store import migrate
from service.store.keys import RedisKeys

CAROL = {**USER, "username": "carol", "email": "carol@example.com"}
# Rate limits on (each request then needs Redis), far above what a test sends.
GENEROUS = RateLimitSettings(enabled=True, login=Rate(1000, 60), register=Rate(1000, 60),
                             password_reset=Rate(1000, 60))


# -- our own Redis ----------------------------------------------------------------------------
@pytest.fixture
def own_redis() -> Iterator[Path]:
    """A Valkey server of this test's own, in a short directory (Unix socket paths are short)."""
    data_dir = Path(tempfile.mkdtemp(prefix="authsvc-faults-", dir="/tmp"))
    embedded_redis.ensure_running(data_dir)
    yield data_dir
    embedded_redis.stop(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def redis_settings(settings: Settings, own_redis: Path) -> Settings:
    url = embedded_redis.ensure_running(own_redis)
    return settings.replace(redis={"url": url, "socket_timeout": 1.0}, rate_limit=GENEROUS)


class Served:
    """The app on a live server and a client aimed at it; idle() waits out background work."""

    def __init__(self, settings: Settings) -> None:
        self.server = LiveServer(create_app(settings)).__enter__()
        self.client = httpx.Client(base_url=self.server.url, timeout=30)

    def idle(self) -> None:
        """Wait until no request task runs: work a 2xx starts after answering (emails queued
        by register/ or password-reset/) must not meet the server a test breaks next."""
        deadline = time.monotonic() + 10
        while self.server.server.server_state.tasks:
            assert time.monotonic() < deadline, "background work never finished"
            time.sleep(0.01)

    def close(self) -> None:
        self.client.close()
        self.server.__exit__()


Serve = Callable[[Settings], Served]


@pytest.fixture
def serve() -> Iterator[Serve]:
    served: list[Served] = []

    def start(settings: Settings) -> Served:
        served.append(Served(settings))
        return served[-1]

    yield start
    for one in served:
        one.close()


def wait_queued(queue: Queue, count: int) -> None:
    deadline = time.monotonic() + 10
    while queue.count < count:
        assert time.monotonic() < deadline, f"fewer than {count} emails were queued"
        time.sleep(0.02)


def sign_up(app: Served) -> dict[str, Any]:
    """register/ alice and let the work it does after answering finish."""
    alice = register(app.client)
    app.idle()
    return alice


def assert_unavailable(response: httpx.Response) -> None:
    """503 with a JSON {"detail"}, Retry-After and the API's security headers."""
    if response.status_code == 500:  # let the server log its trace first (see support.settle)
        time.sleep(1)
    assert response.status_code == 503, (response.request.url, response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["detail"] and "unavailable" in body["detail"]
    assert int(response.headers["retry-after"]) > 0
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == (
        "default-src 'none'; frame-ancestors 'none'")


# -- Redis down -------------------------------------------------------------------------------
def test_redis_down_is_503_on_every_endpoint_that_checks_it_and_heals_by_itself(
        redis_settings: Settings, own_redis: Path, serve: Serve) -> None:
    """OWASP ASVS 4.1.5 (fail securely): no token is accepted unchecked while Redis is down;
    the same app serves again once Redis is back, and the revocation made before survives."""
    app = serve(redis_settings)
    client = app.client
    alice = sign_up(app)
    revoked = login(client).json()["refresh"]
    assert client.post(API + "logout/", json={"refresh_token": revoked}).status_code == 205

    assert embedded_redis.stop(own_redis)
    calls: dict[str, Callable[[], httpx.Response]] = {
        "profile": lambda: client.get(API + "profile/", headers=bearer(alice["access"])),
        "refresh": lambda: client.post(API + "token/refresh/", json={"refresh": alice["refresh"]}),
        "refresh revoked": lambda: client.post(API + "token/refresh/", json={"refresh": revoked}),
        "logout": lambda: client.post(API + "logout/", json={"refresh_token": alice["refresh"]}),
        "login": lambda: login(client),
        "register": lambda: client.post(API + "register/", json=CAROL),
        "password reset": lambda: client.post(API + "password-reset/",
                                              json={"email": USER["email"]}),
        "healthz": lambda: client.get("/healthz"),
    }
    started = time.monotonic()
    for call in calls.values():
        assert_unavailable(call())
    assert time.monotonic() - started < 10, "a Redis outage must fail fast, not hang"

    assert embedded_redis.ensure_running(own_redis) == redis_settings.redis.url
    assert calls["healthz"]().status_code == 200
    assert calls["profile"]().status_code == 200
    assert calls["refresh"]().status_code == 200
    refused = calls["refresh revoked"]()  # the blacklist entry came back from the AOF
    assert refused.status_code == 401 and refused.json()["reason"] == "token_revoked"
    assert calls["logout"]().status_code == 205
    assert calls["login"]().status_code == 200
    assert calls["register"]().status_code == 201  # the failed attempt left no half-made user
    assert calls["password reset"]().status_code == 200


def test_an_old_simplejwt_tokens_first_use_during_a_redis_outage_is_503_then_works(
        redis_settings: Settings, own_redis: Path, serve: Serve) -> None:
    """The cut-over from Django (tests/fixtures/django_ref): a first use that cannot start its
    session is a 503 and leaves no record that it was used, so the retry starts it; the old
    access token is judged on the database alone, so it keeps working."""
    from django_ref import USERS, migration_settings, run_import, session_of

    settings = redis_settings.replace(migration=migration_settings())
    run_import(settings)
    app = serve(settings)
    old = session_of(USERS["argon2_one"])
    assert embedded_redis.stop(own_redis)
    assert_unavailable(app.client.post(API + "token/refresh/", json={"refresh": old["refresh"]}))
    assert app.client.get(API + "profile/", headers=bearer(old["access"])).status_code == 200
    assert embedded_redis.ensure_running(own_redis) == settings.redis.url
    renewed = app.client.post(API + "token/refresh/", json={"refresh": old["refresh"]})
    assert renewed.status_code == 200, renewed.text
    me = app.client.get(API + "profile/", headers=bearer(renewed.json()["access"]))
    assert me.status_code == 200, me.text


def test_registration_during_a_redis_outage_leaves_no_half_made_user(
        settings: Settings, own_redis: Path, serve: Serve) -> None:
    """Whole or not at all: with rate limits off Redis is first needed after the row is
    written; the failed registration must be undone so the retry is a 201, not "taken"."""
    url = embedded_redis.ensure_running(own_redis)
    app = serve(settings.replace(redis={"url": url, "socket_timeout": 1.0}))
    app.client.get("/healthz")
    assert embedded_redis.stop(own_redis)
    assert_unavailable(app.client.post(API + "register/", json=CAROL))
    assert embedded_redis.ensure_running(own_redis) == url
    assert app.client.post(API + "register/", json=CAROL).status_code == 201


def test_redis_that_stops_answering_is_503_not_a_hang(
        redis_settings: Settings, own_redis: Path, serve: Serve) -> None:
    """A Redis that goes silent (SIGSTOP: connections stay open, nothing answers) is a 503
    once [redis] socket_timeout passes, and the same app heals when it answers again."""
    app = serve(redis_settings)
    client = app.client
    alice = sign_up(app)
    pid = int((own_redis / "redis.pid").read_text())
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert_unavailable(client.get(API + "profile/", headers=bearer(alice["access"])))
        assert_unavailable(login(client))
        waited = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert waited < 6, f"two requests on a silent Redis took {waited:.1f} s (timeout 1 s)"
    assert client.get(API + "profile/", headers=bearer(alice["access"])).status_code == 200
    assert login(client).status_code == 200


def test_redis_refusing_writes_is_503_not_500(redis_settings: Settings,
                                              serve: Serve) -> None:
    """Redis full under noeviction answers OOM to writes: login, register and password reset
    (rate-limit counters) are 503, not 500, and work again once there is room (ASVS 4.1.5)."""
    app = serve(redis_settings)
    client = app.client
    sign_up(app)
    calls: list[Callable[[], httpx.Response]] = [
        lambda: login(client),
        lambda: client.post(API + "register/", json=CAROL),
        lambda: client.post(API + "password-reset/", json={"email": USER["email"]}),
    ]
    admin = redis.Redis.from_url(redis_settings.redis.url)
    admin.config_set("maxmemory", 1)
    try:
        for call in calls:
            assert_unavailable(call())
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()
    assert [call().status_code for call in calls] == [200, 201, 200]


# -- errors the drivers raise below their own exception types ---------------------------------
def _crashing_app(settings: Settings, exc: BaseException) -> Any:
    async def crash(request: Request) -> Any:
        raise exc

    app = create_app(settings)
    app.router.routes.append(Route("/crash", crash))
    return app


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
    OSError(113, "Connect call failed ('10.0.0.7', 5432)"),  # EHOSTUNREACH: a plain OSError
    OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 5432, 0, 0), "
            "[Errno 111] Connect call failed ('127.0.0.1', 5432)"),  # asyncio, dual-stack name
    socket.gaierror(-3, "Temporary failure in name resolution"),
    TimeoutError(),
], ids=["refused", "unreachable", "dual-stack", "dns", "timeout"])
def test_socket_level_failures_of_a_backing_service_are_503(settings: Settings,
                                                            exc: BaseException) -> None:
    """What asyncpg and asyncio raise when the database host cannot be reached is a 503 with
    Retry-After, never a 500 (OWASP ASVS 7.4.1: a generic message, no trace)."""
    with LiveServer(_crashing_app(settings, exc)) as server:
        assert_unavailable(httpx.get(server.url + "/crash", timeout=10))


def test_a_missing_file_is_still_a_500_not_an_outage(settings: Settings,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A local bug is not reported as a retryable outage: FileNotFoundError stays a 500."""
    with LiveServer(_crashing_app(settings, FileNotFoundError(2, "No such file"))) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            response = client.get("/crash")
            settle(client, caplog)
        caplog.clear()  # the 500 is the point: keep the crash guard out of this test
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error"}


def test_a_500_carries_cors_headers_for_an_allowed_origin(settings: Settings,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """Without them a browser app sees an opaque network error, not the 500 and its body."""
    origin = "https://app.example.com"
    cors = settings.replace(cors=CorsSettings(allow_origins=(origin,)))
    with LiveServer(_crashing_app(cors, ZeroDivisionError("a plain bug"))) as server:
        answers = []
        for sent in (origin, "https://evil.example"):
            # a new connection each: uvicorn closes one whose request raised
            with httpx.Client(base_url=server.url, timeout=10) as client:
                answers.append(client.get("/crash", headers={"Origin": sent}))
                settle(client, caplog)
        caplog.clear()  # the 500s are the point
    allowed, other = answers
    assert allowed.status_code == other.status_code == 500
    assert allowed.headers["access-control-allow-origin"] == origin
    assert "access-control-allow-origin" not in other.headers


# -- PostgreSQL down --------------------------------------------------------------------------
class Forwarder:
    """127.0.0.1:port -> target in a thread of its own; cut() drops every connection and stops
    listening (clients get ECONNREFUSED), restore() listens again on the same port, freeze()
    holds bytes in flight so that a cut lands in the middle of a query."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = 0
        self.server: asyncio.Server | None = None
        self.transports: set[asyncio.WriteTransport] = set()
        self.flowing = self._run(self._event())
        self.held = 0  # chunks waiting behind freeze()
        self.restore()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    @staticmethod
    async def _event() -> asyncio.Event:
        event = asyncio.Event()
        event.set()
        return event

    async def _listen(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.transports.add(writer.transport)
        ends = [writer]
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            ends.append(up_writer)
            self.transports.add(up_writer.transport)
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer),
                                 return_exceptions=True)
        except OSError:
            pass
        finally:  # also when close() cancels it: no stream is left for the collector to warn of
            for end in ends:
                end.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if not self.flowing.is_set():
                self.held += 1
                await self.flowing.wait()
            writer.write(data)
            await writer.drain()
        writer.close()

    async def _cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for transport in list(self.transports):
            transport.abort()
        self.transports.clear()
        self.server = None

    def cut(self) -> None:
        self._run(self._cut())

    def restore(self) -> None:
        self._run(self._listen())
        self.loop.call_soon_threadsafe(self.flowing.set)

    def freeze(self) -> None:
        self.held = 0
        self.loop.call_soon_threadsafe(self.flowing.clear)

    def thaw(self) -> None:
        self.loop.call_soon_threadsafe(self.flowing.set)

    async def _shutdown(self) -> None:
        if self.server is not None:
            await self._cut()
        handlers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    def close(self) -> None:
        self._run(self._shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def with_host(url: str, host: str, port: int) -> str:
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    return urlunsplit((parts.scheme, f"{user}@{host}:{port}" if user else f"{host}:{port}",
                       parts.path, parts.query, parts.fragment))


@pytest.fixture
def forwarded_pg(empty_postgres: str) -> Iterator[tuple[str, Forwarder]]:
    """A migrated throw-away database, reached through a forwarder the test can cut."""
    migrate.upgrade(empty_postgres)
    target = urlsplit(empty_postgres)
    forwarder = Forwarder(target.hostname or "127.0.0.1", target.port or 5432)
    yield with_host(empty_postgres, "127.0.0.1", forwarder.port), forwarder
    forwarder.close()


def _drop_cached_users(settings: Settings) -> None:
    """Forget the Redis copy of every user row, so the next check must ask the database."""
    client = redis.Redis.from_url(settings.redis.url)
    keys = list(client.scan_iter(match=RedisKeys(settings.redis.prefix).every("user")))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.mark.postgres
def test_database_down_is_503_and_heals_by_itself(settings: Settings, serve: Serve,
                                                  forwarded_pg: tuple[str, Forwarder]) -> None:
    """OWASP ASVS 4.1.5: with PostgreSQL cut off, login, register, /healthz and a Bearer check
    that needs the user row answer 503; the same app serves again once it is reachable."""
    url, forwarder = forwarded_pg
    s = settings.replace(database={"url": url})
    app = serve(s)
    client = app.client
    alice = sign_up(app)

    forwarder.cut()
    _drop_cached_users(s)
    assert_unavailable(client.get(API + "profile/", headers=bearer(alice["access"])))
    assert_unavailable(login(client))
    assert_unavailable(client.post(API + "register/", json=CAROL))
    assert_unavailable(client.get("/healthz"))

    forwarder.restore()
    assert client.get("/healthz").status_code == 200
    assert client.get(API + "profile/", headers=bearer(alice["access"])).status_code == 200
    assert login(client).status_code == 200
    assert client.post(API + "register/", json=CAROL).status_code == 201


@pytest.mark.postgres
def test_database_cut_in_the_middle_of_a_query_is_503(settings: Settings, serve: Serve,
                                                       forwarded_pg: tuple[str, Forwarder]) -> None:
    """A connection lost mid-query (asyncpg ConnectionDoesNotExistError) is a 503, not a 500,
    and the pool replaces the dead connection by itself."""
    url, forwarder = forwarded_pg
    app = serve(settings.replace(database={"url": url}))
    client = app.client
    sign_up(app)

    forwarder.freeze()
    answer: list[httpx.Response] = []
    signing_in = threading.Thread(target=lambda: answer.append(login(client)))
    signing_in.start()
    deadline = time.monotonic() + 10
    while forwarder.held == 0:
        assert time.monotonic() < deadline, "the login never reached the database"
        time.sleep(0.01)
    forwarder.cut()
    signing_in.join(timeout=20)
    assert answer, "the login hung after its connection was cut"
    assert_unavailable(answer[0])

    forwarder.restore()
    assert login(client).status_code == 200


@pytest.mark.postgres
def test_database_that_stops_answering_is_503_not_a_hang(
        settings: Settings, serve: Serve, forwarded_pg: tuple[str, Forwarder]) -> None:
    """A server that goes silent without closing anything (a partition, a frozen VM) is a 503
    after [database] timeout, not a request that hangs; it heals when the server answers."""
    url, forwarder = forwarded_pg
    app = serve(settings.replace(database={"url": url, "timeout": 1}))
    client = app.client
    sign_up(app)

    forwarder.freeze()
    started = time.monotonic()
    assert_unavailable(login(client, timeout=10))
    assert_unavailable(client.get("/healthz", timeout=10))
    assert time.monotonic() - started < 8

    forwarder.thaw()
    assert login(client).status_code == 200
    assert client.get("/healthz").status_code == 200


# -- a worker killed mid-job ------------------------------------------------------------------
@pytest.fixture
def silent_smtp() -> Iterator[int]:
    """A port whose kernel completes the TCP handshake but where nobody ever answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


def test_worker_killed_mid_job_loses_no_email(
        redis_settings: Settings, serve: Serve, silent_smtp: int,
        smtp_server: tuple[Mailbox, int], tmp_path: Path) -> None:
    """A worker SIGKILLed while sending a reset email: once RQ's heartbeat for the job lapses,
    its cleanup puts the job back on the queue (a retry), and a new worker delivers it."""
    app = serve(redis_settings)
    client = app.client
    sign_up(app)
    connection = redis.Redis.from_url(redis_settings.redis.url)
    queue = Queue(redis_settings.worker.queue, connection=connection)
    queue.empty()  # type: ignore[no-untyped-call]  # the verification email is not the point
    assert client.post(API + "password-reset/", json={"email": USER["email"]}).status_code == 200
    wait_queued(queue, 1)
    (job_id,) = queue.job_ids
    assert str(Job.fetch(job_id, connection=connection).func_name).endswith("send_password_reset")

    env = {**worker_env(redis_settings), "AUTH_SMTP_PORT": str(silent_smtp),
           "AUTH_SMTP_TIMEOUT": "60"}
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen([sys.executable, "-m", "service.cli", "worker"], env=env,
                              cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    started = StartedJobRegistry(queue.name, connection=connection)
    try:
        deadline = time.monotonic() + 30
        while job_id not in started.get_job_ids():
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, "the worker never started the job"
            time.sleep(0.05)
        time.sleep(0.5)  # the work-horse is now waiting for an SMTP greeting that never comes
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its work-horse child
        worker.wait(timeout=10)
        log.close()

    job = Job.fetch(job_id, connection=connection)
    assert job.get_status() == JobStatus.STARTED and queue.count == 0  # orphaned, for now
    started.cleanup()  # RQ waits for the job's heartbeat to lapse: nothing happens yet
    assert job_id in started.get_job_ids()
    scored: list[tuple[bytes, float]] = connection.zrange(  # type: ignore[assignment]
        started.key, 0, -1, withscores=True)
    expires = max(score for _, score in scored)
    # heartbeat TTL = min(job timeout, job_monitoring_interval 30 s) + 60 s
    assert expires <= time.time() + 91
    started.cleanup(timestamp=expires + 1)  # what a live worker's maintenance does by then

    job = Job.fetch(job_id, connection=connection)
    assert job_id not in started.get_job_ids()
    assert job_id in queue.job_ids and job.get_status() == JobStatus.QUEUED
    assert job_id not in FailedJobRegistry(queue.name, connection=connection).get_job_ids()
    worker_run = run_worker(redis_settings, tmp_path)
    assert worker_run.returncode == 0, worker_run.stderr
    mailbox, _ = smtp_server
    assert [(m["To"], m["Subject"]) for m in mailbox.messages] == [
        (USER["email"], "Reset your password")]
    connection.close()
