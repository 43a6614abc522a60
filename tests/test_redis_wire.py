"""redis_wire.py: the API's multiplexed Redis client, on the real Redis and on servers that
misbehave on purpose (silent, closing, answering twice)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import hiredis
import pytest
import redis
from redis import exceptions as rx
from support import free_port

from service.app import create_app
from service.config import ConfigError, Settings
from service.store.redis_wire import (
    RedisWire,
    Script,
    UnsupportedURL,
    check_url,
    pack,
    pairs,
    reply_error,
)

T = TypeVar("T")


def run(redis_url: str, body: Callable[[RedisWire], Awaitable[T]], timeout: float = 5) -> T:
    async def main() -> T:
        wire = RedisWire(redis_url, timeout=timeout)
        try:
            return await body(wire)
        finally:
            await wire.close()

    return asyncio.run(main())


def test_commands_reads_and_transactions_round_trip(redis_url: str, redis_prefix: str,
                                                       sync_redis: redis.Redis) -> None:
    """Replies come back as redis-py's raw ones would; the keys land in the URL's database."""
    key = f"{redis_prefix}h"

    async def body(wire: RedisWire) -> list[Any]:
        return [await wire.execute("HSET", key, "a", "1", "é", "✓"),
                await wire.read(("HGET", key, "a"), ("HGETALL", key), ("EXISTS", key)),
                await wire.transaction(("EXPIRE", key, 60), ("HINCRBY", key, "a", 2),
                                       ("TTL", key)),
                await wire.execute("GET", f"{redis_prefix}missing")]

    added, piped, transacted, missing = run(redis_url, body)
    assert added == 2
    assert piped[0] == b"1" and pairs(piped[1]) == {"a": "1", "é": "✓"} and piped[2] == 1
    assert transacted[:2] == [1, 3] and 59 <= transacted[2] <= 60
    assert missing is None
    assert sync_redis.hgetall(key) == {b"a": b"3", "é".encode(): "✓".encode()}


def test_error_replies_raise_redis_py_exceptions(redis_url: str, redis_prefix: str) -> None:
    key = f"{redis_prefix}s"

    async def body(wire: RedisWire) -> list[str]:
        await wire.execute("SET", key, "x", "EX", 60)
        seen = []
        for call in (wire.execute("HGET", key, "f"),
                     wire.read(("GET", key), ("HGETALL", key)),
                     wire.transaction(("SET", f"{key}2", "y", "EX", 60), ("NOSUCHCOMMAND",))):
            try:
                await call
            except rx.ResponseError as exc:
                seen.append(type(exc).__name__ + ": " + str(exc).split(" ")[0])
        # The refused transaction ran nothing, and the connection is still in step.
        seen.append(str(await wire.read(("GET", f"{key}2"), ("GET", key))))
        return seen

    assert run(redis_url, body) == ["ResponseError: WRONGTYPE", "ResponseError: WRONGTYPE",
                                    "ResponseError: ERR", "[None, b'x']"]


@pytest.mark.parametrize("message, kind", [
    ("OOM command not allowed when used memory > 'maxmemory'.", rx.OutOfMemoryError),
    ("READONLY You can't write against a read only replica.", rx.ReadOnlyError),
    ("NOSCRIPT No matching script.", rx.NoScriptError),
    ("LOADING Redis is loading the dataset in memory", rx.BusyLoadingError),
    ("ERR max number of clients reached", rx.ConnectionError),
    ("WRONGPASS invalid username-password pair", rx.AuthenticationError),
    ("ERR unknown command 'X'", rx.ResponseError),
])
def test_error_replies_map_to_the_classes_the_app_answers_by(message: str,
                                                              kind: type[Exception]) -> None:
    error = reply_error(message)
    assert type(error) is kind and str(error) == message


def test_a_script_the_server_lacks_is_sent_once_then_called_by_sha(redis_url: str,
                                                                   redis_prefix: str) -> None:
    # A source no server has seen: the first EVALSHA meets NOSCRIPT.
    script = Script(f"-- {uuid.uuid4().hex}\nreturn {{KEYS[1], ARGV[1] + 1}}")

    async def body(wire: RedisWire) -> list[Any]:
        before = await wire.execute("SCRIPT", "EXISTS", script.sha)
        first = await wire.eval(script, [f"{redis_prefix}k"], [41])
        after = await wire.execute("SCRIPT", "EXISTS", script.sha)
        return [before, first, after, await wire.eval(script, ["k2"], [1])]

    before, first, after, second = run(redis_url, body)
    assert before == [0] and after == [1]
    assert first == [f"{redis_prefix}k".encode(), 42] and second == [b"k2", 2]


def test_concurrent_callers_share_one_connection_and_each_gets_its_own_reply(
        redis_url: str, redis_prefix: str) -> None:
    async def body(wire: RedisWire) -> tuple[list[Any], int]:
        replies = await asyncio.gather(*(
            wire.transaction(("ECHO", f"call-{i}"), ("INCR", f"{redis_prefix}n"),
                             ("EXPIRE", f"{redis_prefix}n", 60))
            for i in range(300)))
        clients = await wire.execute("CLIENT", "LIST")
        ours = [line for line in clients.decode().splitlines() if "name=authsvc-api" in line
                and f"id={await wire.execute('CLIENT', 'ID')} " in line]
        return replies, len(ours)

    replies, named = run(redis_url, body)
    assert [r[0] for r in replies] == [f"call-{i}".encode() for i in range(300)]
    assert sorted(r[1] for r in replies) == list(range(1, 301))
    assert named == 1  # named for operators reading CLIENT LIST


def test_a_cancelled_caller_does_not_put_the_replies_out_of_step(redis_url: str) -> None:
    async def body(wire: RedisWire) -> list[Any]:
        await wire.execute("PING")
        slow = asyncio.ensure_future(wire.execute("ECHO", "abandoned"))
        await asyncio.sleep(0)  # written, not yet answered
        slow.cancel()
        return [await wire.execute("ECHO", f"next-{i}") for i in range(3)]

    assert run(redis_url, body) == [b"next-0", b"next-1", b"next-2"]


def test_a_killed_connection_fails_its_callers_then_the_next_call_reconnects(
        redis_url: str) -> None:
    async def body(wire: RedisWire) -> tuple[Any, Any]:
        first_id = await wire.execute("CLIENT", "ID")
        with redis.Redis.from_url(redis_url) as admin:
            admin.client_kill_filter(_id=first_id)
        await asyncio.sleep(0.1)  # the close reaches the client
        return first_id, await wire.execute("CLIENT", "ID")

    first_id, second_id = run(redis_url, body)
    assert second_id != first_id


# -- servers that misbehave ---------------------------------------------------------------

Behaviour = Callable[[list[bytes], asyncio.StreamWriter], Awaitable[None]]


async def serve(behaviour: Behaviour, setname: bytes = b"+OK\r\n") -> tuple[asyncio.Server, str]:
    """A TCP server that parses RESP commands (hiredis reads them like replies) and lets
    `behaviour` answer; the handshake's CLIENT SETNAME gets `setname`."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = hiredis.Reader()
        try:
            while data := await reader.read(65536):
                parser.feed(data)
                while (command := parser.gets()) is not False:
                    if command[:2] == [b"CLIENT", b"SETNAME"]:
                        writer.write(setname)
                    else:
                        await behaviour(command, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"redis://127.0.0.1:{port}/0"


async def stop(wire: RedisWire, server: asyncio.Server) -> None:
    await wire.close()
    server.close()
    await asyncio.sleep(0.05)  # the handlers see the client gone and close their sockets


def test_a_server_that_stops_answering_times_out_every_waiting_call() -> None:
    async def silent(command: list[bytes], writer: asyncio.StreamWriter) -> None:
        return None

    async def main() -> tuple[list[str], float]:
        server, url = await serve(silent)
        wire = RedisWire(url, timeout=0.3)
        started = time.monotonic()
        results = await asyncio.gather(*(wire.execute("GET", f"k{i}") for i in range(5)),
                                       return_exceptions=True)
        elapsed = time.monotonic() - started
        await stop(wire, server)
        return [type(r).__name__ for r in results], elapsed

    kinds, elapsed = asyncio.run(main())
    assert kinds == ["TimeoutError"] * 5
    assert 0.25 <= elapsed < 2


def test_callers_arriving_while_a_connection_hangs_share_one_attempt() -> None:
    """A server that accepts but never answers the handshake: twenty callers at once all
    fail after one timeout, not one timeout each in turn; the next call tries again."""
    async def silent(command: list[bytes], writer: asyncio.StreamWriter) -> None:
        return None

    async def main() -> tuple[list[str], float, str]:
        server, url = await serve(silent, setname=b"")
        wire = RedisWire(url, timeout=0.3)
        started = time.monotonic()
        results = await asyncio.gather(*(wire.execute("GET", f"k{i}") for i in range(20)),
                                       return_exceptions=True)
        elapsed = time.monotonic() - started
        try:
            await wire.execute("GET", "again")
            again = "no error"
        except rx.TimeoutError:
            again = "TimeoutError"
        await stop(wire, server)
        return [type(r).__name__ for r in results], elapsed, again

    kinds, elapsed, again = asyncio.run(main())
    assert kinds == ["TimeoutError"] * 20
    assert 0.25 <= elapsed < 1.5
    assert again == "TimeoutError"


def test_a_stray_reply_breaks_the_connection_instead_of_answering_the_next_call() -> None:
    async def twice(command: list[bytes], writer: asyncio.StreamWriter) -> None:
        writer.write(b"+ONE\r\n+TWO\r\n")

    async def main() -> list[Any]:
        server, url = await serve(twice)
        wire = RedisWire(url, timeout=1)
        replies = [await wire.execute("PING")]
        await asyncio.sleep(0.05)
        replies.append(await wire.execute("PING"))  # a new connection, not the stray "TWO"
        await stop(wire, server)
        return replies

    assert asyncio.run(main()) == [b"ONE", b"ONE"]


def test_a_server_that_hangs_up_mid_call_is_a_connection_error() -> None:
    async def hang_up(command: list[bytes], writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()

    async def main() -> str:
        server, url = await serve(hang_up)
        wire = RedisWire(url, timeout=5)
        try:
            await wire.execute("GET", "k")
        except rx.ConnectionError as exc:
            return type(exc).__name__
        finally:
            await stop(wire, server)
        return "no error"

    assert asyncio.run(main()) == "ConnectionError"


def test_nobody_listening_is_a_connection_error() -> None:
    async def main() -> None:
        await RedisWire(f"redis://127.0.0.1:{free_port()}/0", timeout=2).execute("PING")

    with pytest.raises(rx.ConnectionError):
        asyncio.run(main())


def test_the_handshake_authenticates_and_selects_the_urls_database() -> None:
    """AUTH user password and SELECT db from the URL come first; a refused password fails
    the call; a server (a proxy) that refuses CLIENT SETNAME is still used."""
    seen: list[list[bytes]] = []

    async def strict(command: list[bytes], writer: asyncio.StreamWriter) -> None:
        seen.append(command)
        if command[0] == b"AUTH":
            ok = command[1:] == [b"ops", b"s3cr\xc3\xa9t"]
            writer.write(b"+OK\r\n" if ok else b"-WRONGPASS invalid username-password pair\r\n")
        else:
            writer.write(b"+OK\r\n" if command[0] == b"SELECT" else b"+PONG\r\n")

    async def main() -> tuple[Any, str]:
        server, url = await serve(strict, setname=b"-ERR unknown command 'CLIENT'\r\n")
        port = url.rsplit(":", 1)[1].split("/")[0]
        good = RedisWire(f"redis://ops:s3cr%C3%A9t@127.0.0.1:{port}/3", timeout=2)
        bad = RedisWire(f"redis://ops:nope@127.0.0.1:{port}/3", timeout=2)
        try:
            pong = await good.execute("PING")
            try:
                await bad.execute("PING")
                refused = "no error"
            except rx.AuthenticationError as exc:
                refused = str(exc).split(" ")[0]
        finally:
            await bad.close()
            await stop(good, server)
        return pong, refused

    pong, refused = asyncio.run(main())
    assert pong == b"PONG" and refused == "WRONGPASS"
    assert seen[:3] == [[b"AUTH", b"ops", "s3crét".encode()], [b"SELECT", b"3"], [b"PING"]]


def test_a_read_is_asked_again_when_its_connection_breaks_under_it() -> None:
    """The first connection hangs up on the first command sent on it; later ones answer.
    A read (repeatable) gets its answer on a new connection; a write is not repeated."""
    async def main() -> list[str]:
        outcomes = []
        for method in ("read", "transaction"):
            connections: list[asyncio.StreamWriter] = []

            async def flaky(command: list[bytes], writer: asyncio.StreamWriter,
                            connections: list[asyncio.StreamWriter] = connections) -> None:
                if writer not in connections:
                    connections.append(writer)
                if writer is connections[0]:
                    writer.transport.abort()
                else:
                    writer.write(b"$2\r\nok\r\n")

            server, url = await serve(flaky)
            wire = RedisWire(url, timeout=2)
            try:
                replies = await getattr(wire, method)(("GET", "k"))
                outcomes.append(f"{method}: {replies[0].decode()}")
            except rx.ConnectionError:
                outcomes.append(f"{method}: ConnectionError")
            await stop(wire, server)
        return outcomes

    assert asyncio.run(main()) == ["read: ok", "transaction: ConnectionError"]


def test_a_read_does_not_retry_a_server_it_cannot_reach() -> None:
    """Failing to connect at all is not a broken connection: one attempt, then the error."""
    accepted = 0

    async def main() -> str:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal accepted
            accepted += 1
            writer.transport.abort()  # before the handshake is answered

        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        wire = RedisWire(f"redis://127.0.0.1:{port}/0", timeout=2)
        try:
            await wire.read(("GET", "k"))
            outcome = "answered"
        except rx.ConnectionError:
            outcome = "ConnectionError"
        await stop(wire, server)
        return outcome

    assert asyncio.run(main()) == "ConnectionError"
    assert accepted == 1


def test_tcp_connections_send_keepalives() -> None:
    async def pong(command: list[bytes], writer: asyncio.StreamWriter) -> None:
        writer.write(b"+PONG\r\n")

    async def main() -> tuple[int, int]:
        server, url = await serve(pong)
        wire = RedisWire(url, timeout=2)
        await wire.execute("PING")
        assert wire._connection is not None
        sock = wire._connection._transport.get_extra_info("socket")  # type: ignore[union-attr]
        options = (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                   sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE))
        await stop(wire, server)
        return options

    keepalive, idle = asyncio.run(main())
    assert keepalive == 1 and idle == 60


def test_empty_commands_and_batches_never_put_replies_out_of_step(redis_url: str,
                                                                   redis_prefix: str) -> None:
    """Redis answers `*0` with nothing; an empty batch expects nothing: either, sent, would
    hand the next reply to the wrong caller."""
    key = f"{redis_prefix}e"

    async def body(wire: RedisWire) -> list[Any]:
        await wire.execute("SET", key, "value", "EX", 60)
        results = await asyncio.gather(wire.execute(), wire.read(), wire.transaction(),
                                       wire.read(("GET", key), ()), wire.execute("GET", key),
                                       return_exceptions=True)
        return [r if not isinstance(r, Exception) else type(r).__name__ for r in results]

    assert run(redis_url, body, timeout=2) == ["ValueError", [], [], "ValueError", b"value"]


def test_close_is_final(redis_url: str) -> None:
    """Calls after close() fail with ConnectionError instead of quietly reconnecting; a call
    waiting on the connect attempt close() cancels gets ConnectionError, not CancelledError."""
    async def main() -> list[str]:
        seen = []
        wire = RedisWire(redis_url, timeout=2)
        waiting = asyncio.ensure_future(wire.execute("PING"))
        await asyncio.sleep(0)  # the connect attempt has begun
        await wire.close()
        for call in (waiting, wire.execute("PING")):
            try:
                await call
                seen.append("answered")
            except rx.ConnectionError:
                seen.append("ConnectionError")
        return seen

    assert asyncio.run(main()) == ["ConnectionError", "ConnectionError"]


def test_commands_are_packed_as_resp_arrays_of_bulk_strings() -> None:
    assert pack([("SET", "k", 5), (b"\x00\r\n", "é")]) == (
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n5\r\n*2\r\n$3\r\n\x00\r\n\r\n$2\r\n\xc3\xa9\r\n")


@pytest.mark.parametrize("url, named", [
    ("rediss://cache.internal:6380/0?ssl_ca_certs=/etc/ca.pem", "ssl_ca_certs"),
    ("rediss://cache.internal:6380/0?ssl_cert_reqs=none", "ssl_cert_reqs"),
    ("rediss://u:pw@cache.internal/1?db=1&ssl_certfile=/c.pem", "ssl_certfile"),
    ("redis://127.0.0.1:6379/0?socket_timeout=1", "socket_timeout"),
    ("redis://127.0.0.1:6379/0?protocol=3", "protocol"),
    ("redis://127.0.0.1:6379/0?no_such_option=", "no_such_option"),
    ("unix:///tmp/redis.sock?client_name=x", "client_name"),
    ("http://127.0.0.1:6379/0", "http://"),
    ("redis://127.0.0.1:6379/0?db=x", "db"),
    ("redis://ops@127.0.0.1:6379/0", "user name without a password"),
])
def test_a_url_the_wire_would_not_honour_is_refused_naming_what(url: str, named: str) -> None:
    """redis-py (RQ) honours these and RedisWire would not: refused before any connection,
    as a configuration error naming the setting and the option, never the password."""
    with pytest.raises(UnsupportedURL) as refused:
        check_url(url)
    message = str(refused.value)
    assert isinstance(refused.value, ConfigError)
    assert message.startswith("[redis] url: ") and named in message and "\n" not in message
    assert "pw" not in message.replace("password", "")
    with pytest.raises(UnsupportedURL):
        RedisWire(url, timeout=1)


@pytest.mark.parametrize("url", [
    "redis://127.0.0.1:6379/0", "redis://127.0.0.1", "redis://u:p%40ss@cache.internal:6380/3",
    "rediss://cache.internal:6380/2", "redis://127.0.0.1:6379?db=4",
    "unix:///tmp/redis.sock", "unix:///tmp/redis.sock?db=3", "redis://[::1]:6379/0",
    "rediss://:p%23w%3Fd%2F@cache.internal:6380/0", "redis://u:p@ss@cache.internal/1",
    "unix://:pw@/tmp/redis.sock?db=1",
])
def test_the_urls_the_wire_honours_are_accepted(url: str) -> None:
    check_url(url)
    RedisWire(url, timeout=1)


@pytest.mark.parametrize("url", [
    "redis://:s3cr3tpw/x@cache.internal:6379/0", "redis://:s3cr3tpw#x@cache.internal/0",
    "redis://:s3cr3tpw?x=1@cache.internal/0", "redis://u:ab?s3cr3tpw=1@cache.internal/0",
    "redis://u:ab#?s3cr3tpw=1@cache.internal/0", "rediss://:s3cr3tpw",
    "redis://cache.internal:s3cr3tpw/0",
])
def test_a_url_that_misplaces_its_password_is_refused_without_printing_it(url: str) -> None:
    """A password holding an unencoded /, ? or # ends the host early: the rest is read as a
    port, a path, an option or a fragment. The refusal must not echo any of it."""
    with pytest.raises(UnsupportedURL) as refused:
        check_url(url)
    message = str(refused.value)
    assert message.startswith("[redis] url: ") and "\n" not in message
    assert "s3cr3t" not in message


def test_a_capitalised_scheme_is_read_alike_or_refused() -> None:
    """redis-py before 8.2 refused Redis:// in RQ's sync parser while its asyncio one read
    localhost; 8.2 reads it as redis://. Either way the API and RQ never disagree on the host."""
    url = "Redis://cache.internal/0"
    try:
        options = check_url(url)
    except UnsupportedURL as refused:
        assert str(refused).startswith("[redis] url: ")
        return
    assert options["host"] == "cache.internal"
    assert redis.connection.parse_url(url)["host"] == "cache.internal"  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("url", [
    "redis:cache.internal/0", "rediss:cache.internal", "unix:redis.sock", "redis://[::1/0",
])
def test_a_url_redis_py_cannot_read_is_a_configuration_error(url: str) -> None:
    """RQ (redis-py's own parser) refuses these, or the API would read another host: both
    processes must refuse them at startup, as one line, not a traceback at the first mail."""
    with pytest.raises(UnsupportedURL) as refused:
        check_url(url)
    assert str(refused.value).startswith("[redis] url: ")


def test_the_app_refuses_such_a_url_when_it_is_built(settings: Settings) -> None:
    """create_app, before its lifespan opens anything: what tests and bench build."""
    url = "rediss://127.0.0.1:6380/0?ssl_cert_reqs=none"
    with pytest.raises(ConfigError, match=r"^\[redis\] url: .*ssl_cert_reqs"):
        create_app(settings.replace(redis={"url": url}))
