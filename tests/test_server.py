"""The server under slow, oversized and malformed requests ([server] max_header_bytes,
header_timeout, max_connections): a real `authsvc serve` process, and raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from support import LiveServer, free_port

from service.app import create_app
from service.config import ServerSettings, Settings
from service.http.web import API_HEADERS

ROOT = Path(__file__).resolve().parent.parent
FILE_LIMIT = 256  # the serve process's own descriptor limit: below the connections opened
HALF_SENT = 300
SECURITY = {name.lower(): value for name, value in API_HEADERS.items()}


def answer(sock: socket.socket, limit: float = 15) -> bytes:
    """Everything the server sends until it closes the connection (bounded in time)."""
    sock.settimeout(limit)
    data = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def head_of(data: bytes) -> tuple[int, dict[str, str]]:
    """The status and the headers (lower-cased names) of a raw HTTP answer."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in head[1:])
    return int(head[0].split()[1]), {k.lower(): v for k, v in fields.items()}


def assert_security_headers(data: bytes) -> None:
    status, headers = head_of(data)
    for name, value in SECURITY.items():
        assert headers.get(name) == value, (status, name, headers)
    assert headers["connection"] == "close"


def send_oversized(port: int, size: int) -> bytes:
    """A request whose one header line is `size` bytes; reads the answer while sending."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(answer(sock)), daemon=True)
    reader.start()
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
    except OSError:  # the server stopped reading: the answer is what matters
        pass
    reader.join(20)
    sock.close()
    return got[0] if got else b""


def vmrss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def low_file_limit(*argv: str) -> list[str]:
    """A command running `python argv...` with at most FILE_LIMIT open files (no preexec_fn:
    the test process has threads)."""
    return [sys.executable, "-c",
            "import os, resource, sys; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({FILE_LIMIT}, {FILE_LIMIT})); "
            "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])", *argv]


@pytest.fixture
def serve(settings: Settings, tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`authsvc serve` on the test's database and Redis, with at most FILE_LIMIT open files."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}
    env.update({
        "PYTHONPATH": str(ROOT), "AUTH_SERVER_PORT": str(port),
        "AUTH_DATABASE_URL": settings.database.url, "AUTH_REDIS_URL": settings.redis.url,
        "AUTH_REDIS_PREFIX": settings.redis.prefix, "AUTH_JWT_SECRET": settings.jwt.secret,
        "AUTH_DATA_DIR": str(settings.data_dir),
        "AUTH_SERVER_MAX_CONNECTIONS": "100", "AUTH_SERVER_HEADER_TIMEOUT": "2",
        "AUTH_SERVER_MAX_HEADER_BYTES": "16384"})
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(low_file_limit("-m", "service.cli", "serve"), cwd=tmp_path,
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "serve did not start"
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield port, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


def test_half_sent_requests_neither_exhaust_the_server_nor_stay_open(
        serve: tuple[int, subprocess.Popen[bytes]]) -> None:
    """300 connections that send half a request line and stop, at a 256-file limit: a new
    GET /healthz is still answered (uvicorn alone ran out of descriptors and stopped
    accepting), and every half-sent one is closed: the oldest to make room, the rest after
    the header timeout (uvicorn alone kept them open for ever)."""
    port, process = serve
    limits = Path(f"/proc/{process.pid}/limits").read_text()
    assert [line.split()[3] for line in limits.splitlines()
            if line.startswith("Max open files")] == [str(FILE_LIMIT)]
    held = []
    try:
        for _ in range(HALF_SENT):
            sock = socket.create_connection(("127.0.0.1", port), timeout=15)
            sock.sendall(b"GET /healthz HT")
            held.append(sock)
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=15)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        for sock in held:
            assert answer(sock) == b""  # closed without an answer: nothing was asked
    finally:
        for sock in held:
            sock.close()


def test_an_oversized_head_is_431_with_the_headers_and_its_memory_comes_back(
        serve: tuple[int, subprocess.Popen[bytes]]) -> None:
    """Header lines of 40 MB (uvicorn alone accepted them and kept ~40 MB of RSS for each):
    431 with the API's security headers after max_header_bytes; the rest is read and dropped,
    so four rounds of three leave the process's RSS where it was."""
    port, process = serve
    before = vmrss_kib(process.pid)
    answers, grown = [], []
    for _ in range(4):
        answers += [send_oversized(port, 40 << 20) for _ in range(3)]
        grown.append(vmrss_kib(process.pid) - before)
    for data in answers:
        assert head_of(data)[0] == 431, data[:200]
        assert_security_headers(data)
    assert max(grown) < 16 << 10, f"RSS grew by {grown} KiB after each 120 MB of headers"
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=15).status_code == 200


def test_a_head_within_the_limit_and_a_large_body_pass(
        serve: tuple[int, subprocess.Popen[bytes]]) -> None:
    """The limit is on the head only: 15,000 bytes of headers and a 60 KB body in one write
    reach the app (a 400 on the body's content, not a 431)."""
    port, _ = serve
    body = b'{"username_or_email": "' + b"u" * 60000 + b'", "password": "p"}'
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(b"POST /api/v1/auth/login/ HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 15000 +
                 b"\r\nContent-Type: application/json\r\nConnection: close\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    data = answer(sock)
    sock.close()
    assert head_of(data)[0] in (400, 401), data[:300]


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n",
    b"GET /healthz HTTP/9.9\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\n\r\n",
])
def test_unparseable_requests_get_400_with_the_security_headers(
        client: httpx.Client, request_bytes: bytes) -> None:
    """uvicorn's own 400 (the app never sees the request) carries the API's headers too."""
    port = httpx.URL(str(client.base_url)).port
    assert port is not None
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(request_bytes)
    data = answer(sock)
    sock.close()
    assert head_of(data)[0] == 400, data
    assert_security_headers(data)
    assert data.endswith(b'{"detail": "Invalid HTTP request."}')


def test_pipelined_requests_each_get_their_answer_and_their_limit(client: httpx.Client) -> None:
    """Two requests in one packet are both answered; an oversized head pipelined behind a
    good request is still refused with 431 and the headers (as uvicorn does with its 400, the
    request before it goes unanswered if it has not been answered yet)."""
    port = httpx.URL(str(client.base_url)).port
    assert port is not None
    good = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(good + good.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    data = answer(sock)
    sock.close()
    assert data.count(b"HTTP/1.1 200 OK") == 2 and data.endswith(b'{"status":"ok"}'), data
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(good + b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 50000 + b"\r\n\r\n")
    data = answer(sock)
    sock.close()
    refusal = data[data.index(b"HTTP/1.1 431 "):]
    assert_security_headers(refusal)


def test_a_bad_chunk_mid_body_is_400_and_no_error(client: httpx.Client,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A chunked body that stops parsing while the app reads it: 400 with the headers, and
    the request in progress ends quietly."""
    port = httpx.URL(str(client.base_url)).port
    assert port is not None
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(b"POST /api/v1/auth/login/ HTTP/1.1\r\nHost: x\r\nContent-Type: "
                 b"application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n")
    time.sleep(0.2)  # the app is reading the body
    sock.sendall(b"ZZZ\r\n")
    data = answer(sock)
    sock.close()
    assert head_of(data)[0] == 400, data
    assert_security_headers(data)
    assert client.get("/healthz").status_code == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_when_every_connection_is_busy_a_newcomer_gets_503_with_the_headers(
        settings: Settings) -> None:
    """max_connections reached and every connection has a request in progress: a new
    connection is answered 503 (+ Retry-After) with the security headers, then closed; the
    requests in progress finish."""
    release = threading.Event()

    async def slow(request: Request) -> Response:
        deadline = time.monotonic() + 20
        while not release.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return Response(b"done")

    app = create_app(settings.replace(server=ServerSettings(max_connections=2)))
    app.router.routes.append(Route("/slow", slow))
    with LiveServer(app) as server:
        busy = []
        for _ in range(2):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            busy.append(sock)
        time.sleep(0.3)  # both requests reach the app (they are answered only on release)
        newcomer = socket.create_connection(("127.0.0.1", server.port), timeout=15)
        refused = answer(newcomer)
        newcomer.close()
        release.set()
        done = [answer(sock) for sock in busy]
        for sock in busy:
            sock.close()
    status, headers = head_of(refused)
    assert status == 503 and headers["retry-after"] == "5", refused
    assert_security_headers(refused)
    assert all(head_of(data)[0] == 200 and data.endswith(b"done") for data in done), done


BODY_START = (b"POST /api/v1/auth/login/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100\r\n\r\n{\"username_or_email\": ")


def test_a_body_sent_too_slowly_ends_the_connection_quietly(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """A head in time, then a body that stops: the connection ends after body_timeout (the
    app reads a disconnect and logs no error); uvicorn alone waited for ever."""
    app = create_app(settings.replace(server=ServerSettings(body_timeout=1)))
    with LiveServer(app) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
        sock.sendall(BODY_START)
        assert answer(sock) == b""
        sock.close()
        assert httpx.get(server.url + "/healthz", timeout=15).status_code == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_client_leaving_mid_body_is_no_error(settings: Settings, client: httpx.Client,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """A client that closes its connection half-way through a body: nobody is answered and
    nothing is logged as an error (was 'unhandled error' and a traceback per request)."""
    port = httpx.URL(str(client.base_url)).port
    assert port is not None
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(BODY_START)
    time.sleep(0.2)  # the app is reading the body
    sock.close()
    time.sleep(0.5)  # the app reads the disconnect
    assert client.get("/healthz").status_code == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_max_connections_is_lowered_to_fit_the_file_limit(tmp_path: Path) -> None:
    """Where the hard file limit cannot hold max_connections and the reserve, serve lowers
    max_connections (with a warning) rather than fail with EMFILE under load."""
    probe = ("from service.http.server import fit_file_limit\n"
             "from service.config import ServerSettings\n"
             "import resource\n"
             "print(fit_file_limit(ServerSettings(max_connections=1000)).max_connections,"
             " resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
             "print(fit_file_limit(ServerSettings(max_connections=50)).max_connections)\n")
    done = subprocess.run(low_file_limit("-c", probe), cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lowered, soft, kept = done.stdout.split()
    assert (int(lowered), int(soft), int(kept)) == (FILE_LIMIT - 128, FILE_LIMIT, 50)
    assert "max_connections lowered from 1000 to 128" in done.stderr


def stall_reading(port: int, requests: int = 2000) -> socket.socket:
    """A connection that pipelines many requests for a 30 kB answer and never reads: the
    server's writes back up (flow control) with a request in progress."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        sock.send(b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * requests)
    return sock


def stalled_protocols(server: LiveServer) -> list[object]:
    """The server's connections whose answer waits for the client to read."""
    return [p for p in server.server.server_state.connections
            if p in getattr(type(p), "stalled", {})]


def test_clients_that_never_read_their_answers_do_not_hold_the_server(
        settings: Settings) -> None:
    """Slow reading: connections that pipeline requests and never read the answers stalled
    the answer in progress for ever (no timer ran while the server waited to write), so
    max_connections of them kept every newcomer at 503. A connection whose answer cannot be
    written for send_timeout seconds is ended, and one that is stalled is given up first
    when a newcomer needs its place."""
    app = create_app(settings.replace(server=ServerSettings(max_connections=3,
                                                            send_timeout=1)))
    with LiveServer(app) as server:
        stalled = [stall_reading(server.port) for _ in range(3)]
        try:
            # Every answer in progress waits to be written (on a loaded machine, not at once).
            deadline = time.monotonic() + 15
            while len(stalled_protocols(server)) < 3:
                assert time.monotonic() < deadline, "the answers never filled the buffers"
                time.sleep(0.05)
            newcomer = httpx.get(server.url + "/healthz", timeout=15)
            assert newcomer.status_code == 200, newcomer.text
            time.sleep(1.5)  # past send_timeout: all are gone, none waits to be evicted
            assert not [p for p in server.server.server_state.connections
                        if getattr(p, "transport", None) is not None
                        and p.transport.get_write_buffer_size() > 0]
        finally:
            for sock in stalled:
                sock.close()


def test_a_pipelining_client_that_leaves_while_its_answers_wait_is_no_error(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """A client that pipelines requests, reads nothing, then closes: uvicorn marked only the
    last request it parsed as disconnected, so the one in progress wrote to the closed
    transport ('unhandled error' and a traceback per connection)."""
    app = create_app(settings)
    with LiveServer(app) as server:
        sockets = [stall_reading(server.port) for _ in range(3)]
        time.sleep(0.5)
        for sock in sockets:
            sock.close()
        time.sleep(0.5)  # the answers in progress see the disconnect
        assert httpx.get(server.url + "/healthz", timeout=15).status_code == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_chunk_trailers_cannot_fill_the_memory(settings: Settings) -> None:
    """Trailers after the last chunk are headers uvicorn appends to the request's headers
    without a limit, for as long as body_timeout lets the client send (2 GB in 6 s on a
    laptop, all kept): past twice max_body_bytes on the wire the request is answered 413,
    with the security headers, and the connection ends."""
    app = create_app(settings.replace(server=ServerSettings(body_timeout=60)))
    with LiveServer(app) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(answer(sock, 20)), daemon=True)
        reader.start()
        sock.sendall(BODY_START.replace(b"Content-Length: 100", b"Transfer-Encoding: chunked")
                     .split(b"\r\n\r\n")[0] + b"\r\n\r\n2\r\n{}\r\n0\r\n")
        trailer = b"X-T: " + b"a" * 8000 + b"\r\n"
        try:
            for _ in range(2500):  # 20 MB, or until the server stops reading
                sock.sendall(trailer)
        except OSError:
            pass
        reader.join(25)
        sock.close()
    assert got and head_of(got[0])[0] == 413, got[:1]
    assert_security_headers(got[0])


def test_connections_draining_after_an_error_answer_give_way_to_newcomers(
        settings: Settings) -> None:
    """A connection answered 400 (or 431) is read and dropped for 2 s before it closes, and
    counted meanwhile: a client opening connections that each send one bad line kept every
    newcomer at 503. Those connections, answered already, give their place first."""
    app = create_app(settings.replace(server=ServerSettings(max_connections=3)))
    with LiveServer(app) as server:
        refused = []
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
            sock.sendall(b"NOT HTTP\r\n\r\n")
            refused.append(sock)
        try:
            time.sleep(0.3)  # each got its 400 and is draining
            newcomer = httpx.get(server.url + "/healthz", timeout=15)
        finally:
            for sock in refused:
                sock.close()
    assert newcomer.status_code == 200, newcomer.text


def test_a_body_past_the_limit_still_gets_the_apps_413(settings: Settings) -> None:
    """A client that sends its whole oversized body although the app answered 413 at once
    (from Content-Length): the protocol stops reading it past its own bound, and the client
    still reads the 413 (the connection is drained, not reset)."""
    app = create_app(settings)
    with LiveServer(app) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(answer(sock, 20)), daemon=True)
        reader.start()
        size = 4_000_000
        try:
            sock.sendall(b"POST /api/v1/auth/login/ HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % size)
            for _ in range(size // 40_000):
                sock.sendall(b"a" * 40_000)
        except OSError:
            pass
        reader.join(25)
        sock.close()
    assert got and head_of(got[0])[0] == 413, got[:1]
