"""A lean asyncio Redis client for the API process: one multiplexed connection, RESP2 via hiredis.

Every Bearer request and every refresh makes one Redis round trip, so the client's own cost
per call is on the hot path. redis-py's asyncio client checks a connection out of a pool,
wraps each read in a timeout task and builds command objects: about 90 µs of a ~260 µs
profile GET on the bench machine (bench/README.md). Here all requests share one connection:
commands are written as they come and replies are matched in order (Redis answers in order),
so concurrent requests are pipelined by the kernel for free.

Failures are redis-py's exception classes (redis.exceptions), so the app maps outages
(ConnectionError, TimeoutError, OOM, READONLY) to 503 in one place. A connection that breaks
fails every call waiting on it; the next call connects again. A reply that does not come
within `timeout` seconds fails the connection the same way: after a lost reply the order of
the remaining ones cannot be trusted.

RQ (synchronous, in the worker and for enqueueing) keeps using redis-py, which honours more
of a URL than this client does. Both read the same [redis] url, so check_url refuses what
this client would ignore, and the service refuses it at startup: otherwise mail would work
while every API request met a server it cannot reach (503).

Supported: redis://, rediss:// and unix:// URLs with a user name and password, host and
port, and the database as the path (`/3`) or the one query option `db`. rediss:// is TLS
verified against the system's certificate authorities, the host name checked.
Not supported (refused): every other query option, among them the TLS ones (ssl_ca_certs,
ssl_cert_reqs, ssl_certfile, ssl_keyfile, ssl_check_hostname, ...: no private CA, no client
certificate), socket and timeout options (the timeout is [redis] socket_timeout), protocol
(RESP2 only), client_name; Sentinel and Cluster; a user name without a password (redis-py
sends AUTH for it, this client would not).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import re
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import hiredis
from redis import exceptions as rx
from redis.connection import parse_url

from service.config import ConfigError

Arg = str | bytes | int
Command = Sequence[Arg]

# What check_url lets through; see the module's docstring.
_SCHEMES = ("redis", "rediss", "unix")
_QUERY_OPTIONS = ("db",)
_OPTION_NAME = re.compile(r"[A-Za-z0-9_]+")
# One refusal for every URL redis-py cannot read: quoting a part of it could print a password.
_UNREADABLE = ("[redis] url: not a URL redis-py can read: redis://[user:password@]host[:port]"
               "[/db], rediss://... or unix://[:password@]/path[?db=N], the port a number up to "
               "65535, the db a number; percent-encode / ? # in a user or password")

# First probe after 60 s idle, then every 10 s; 3 unanswered probes end the connection.
_KEEPALIVE = {"TCP_KEEPIDLE": 60, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 3}

# Error replies by their first word, as Redis and Valkey send them; the rest: ResponseError.
_ERRORS: dict[str, type[rx.RedisError]] = {
    "NOSCRIPT": rx.NoScriptError, "OOM": rx.OutOfMemoryError, "READONLY": rx.ReadOnlyError,
    "LOADING": rx.BusyLoadingError, "TRYAGAIN": rx.TryAgainError,
    "CLUSTERDOWN": rx.ClusterDownError, "MASTERDOWN": rx.ConnectionError,
    "NOAUTH": rx.AuthenticationError, "WRONGPASS": rx.AuthenticationError,
    "EXECABORT": rx.ExecAbortError,
}


def reply_error(message: str) -> rx.RedisError:
    """The redis-py exception for an error reply."""
    code = message.split(" ", 1)[0]
    if message.startswith("ERR max number of clients reached"):
        return rx.ConnectionError(message)
    return _ERRORS.get(code, rx.ResponseError)(message)


def _raise_errors(reply: Any) -> Any:
    if isinstance(reply, hiredis.ReplyError):
        raise reply_error(str(reply))
    return reply


def text(value: Any) -> str:
    """A bulk-string reply (bytes) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def pairs(flat: Sequence[Any]) -> dict[str, str]:
    """A flat field/value reply (HGETALL, a script's) as a dict of text."""
    return {text(flat[i]): text(flat[i + 1]) for i in range(0, len(flat), 2)}


class UnsupportedURL(ConfigError):
    """A [redis] url with a scheme or option RedisWire does not honour."""


def check_url(url: str) -> dict[str, Any]:
    """Raise UnsupportedURL, naming the scheme or option, for a URL this client would not
    honour in full (where redis-py, and so RQ, would), or that redis-py cannot read.

    The message never quotes the URL's host, port or path: a password holding an unencoded
    /, ? or # ends the host early, and the rest of it is read as a port, path or option."""
    try:
        parsed = urlsplit(url)
        parsed.port  # noqa: B018 (raises ValueError for a port that is no number in range)
    except ValueError:
        raise UnsupportedURL(_UNREADABLE) from None
    if parsed.scheme not in _SCHEMES:
        raise UnsupportedURL(f"[redis] url: the scheme {parsed.scheme or '(none)'}:// is not "
                             "supported: use redis://, rediss:// or unix://")
    if "@" in parsed.query + parsed.fragment or (parsed.scheme != "unix" and "@" in parsed.path):
        raise UnsupportedURL(_UNREADABLE)
    for name in parse_qs(parsed.query, keep_blank_values=True):
        if name not in _QUERY_OPTIONS:
            shown = name if _OPTION_NAME.fullmatch(name) else "(not a plain name)"
            raise UnsupportedURL(
                f"[redis] url: the option {shown} is not supported by the API's Redis client, "
                "which honours only user, password, host, port and db (rediss://: TLS "
                "verified against the system's certificate authorities)")
    try:
        # RQ's reading: redis-py's sync parser is its asyncio one plus a check of the scheme
        # (it refuses Redis:// and redis:host, which the asyncio one reads as localhost).
        options: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError:
        raise UnsupportedURL(_UNREADABLE) from None
    if options.get("username") and not options.get("password"):
        # redis-py (RQ) sends AUTH for the user; this client sends AUTH only with a password.
        raise UnsupportedURL("[redis] url: a user name without a password is not supported: "
                             "give the user's password, or no user (the default user)")
    return options


def pack(commands: Sequence[Command]) -> bytes:
    """RESP2 arrays of bulk strings, one per command."""
    out = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        for arg in command:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


@dataclass(frozen=True)
class Script:
    """A Lua script called by its SHA1 (EVALSHA), loaded again when the server lost it."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


class _BrokenUnderCall(rx.ConnectionError):
    """The connection broke after the call was sent (not: could not connect)."""


class _Waiter:
    __slots__ = ("expected", "future", "replies", "sent_at")

    def __init__(self, future: asyncio.Future[list[Any]], expected: int, sent_at: float) -> None:
        self.future = future
        self.replies: list[Any] = []
        self.expected = expected
        self.sent_at = sent_at


class _Connection(asyncio.Protocol):
    """One socket: writes batches of commands, hands replies back in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._loop = loop
        self._timeout = timeout
        self._parser = hiredis.Reader()
        self._waiting: collections.deque[_Waiter] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self._outgoing: list[bytes] = []  # written once per event-loop pass (_flush)
        self._watchdog: asyncio.TimerHandle | None = None
        self.broken: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # One connection lives for hours and may sit idle at night: keepalives keep a
            # NAT or firewall from forgetting it, and notice a peer that vanished.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            for option, value in _KEEPALIVE.items():
                if hasattr(socket, option):
                    sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(rx.ConnectionError(f"Connection to Redis lost: {exc or 'closed by server'}"))

    def data_received(self, data: bytes) -> None:
        self._parser.feed(data)
        waiting = self._waiting
        try:
            while (reply := self._parser.gets()) is not False:
                waiter = waiting[0]
                waiter.replies.append(reply)
                if len(waiter.replies) == waiter.expected:
                    waiting.popleft()
                    if not waiter.future.done():  # the caller may have been cancelled
                        waiter.future.set_result(waiter.replies)
        except hiredis.ProtocolError as exc:
            self._fail(rx.ConnectionError(f"Redis protocol error: {exc}"))
        except IndexError:  # a reply nobody asked for: the stream is out of step
            self._fail(rx.ConnectionError("Redis sent a reply that was not asked for"))

    def send(self, payload: bytes, expected: int) -> asyncio.Future[list[Any]]:
        if self.broken is not None or self._transport is None:
            raise rx.ConnectionError("Redis connection is closed")
        future: asyncio.Future[list[Any]] = self._loop.create_future()
        waiter = _Waiter(future, expected, self._loop.time())
        self._waiting.append(waiter)
        if not self._outgoing:
            self._loop.call_soon(self._flush)
        self._outgoing.append(payload)
        if self._watchdog is None:
            self._watchdog = self._loop.call_at(waiter.sent_at + self._timeout, self._check)
        return future

    def _flush(self) -> None:
        """One write (one syscall) for every call made in this pass of the event loop: under
        load, tens of requests' commands leave together."""
        payload = b"".join(self._outgoing)
        self._outgoing.clear()
        if self.broken is None and self._transport is not None:
            self._transport.write(payload)

    def _check(self) -> None:
        """Fail the connection if its oldest unanswered batch waited `timeout` seconds;
        else look again when it would have. One timer per connection, not per call."""
        self._watchdog = None
        if not self._waiting:
            return
        due = self._waiting[0].sent_at + self._timeout
        if self._loop.time() >= due:
            self._fail(rx.TimeoutError(f"No reply from Redis within {self._timeout} s"))
        else:
            self._watchdog = self._loop.call_at(due, self._check)

    def _fail(self, exc: BaseException) -> None:
        if self.broken is None:
            self.broken = exc
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(exc)
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        self._fail(rx.ConnectionError("Redis client closed"))


class RedisWire:
    """Redis commands for the API process, over one shared connection per event loop. The
    URL must pass check_url (UnsupportedURL otherwise)."""

    def __init__(self, url: str, *, timeout: float, client_name: str = "authsvc-api") -> None:
        self._options = check_url(url)
        self._tls = urlsplit(url).scheme == "rediss"
        self._timeout = timeout
        self._client_name = client_name
        self._connection: _Connection | None = None
        # The connection being opened: every caller that finds none waits on this one
        # attempt, so an unreachable server costs each of them one timeout, not one each
        # in turn.
        self._connecting: asyncio.Future[_Connection] | None = None
        self._closed = False

    # -- commands -----------------------------------------------------------------------
    async def execute(self, *command: Arg) -> Any:
        """One command; its reply, or its error raised."""
        (reply,) = await self._round_trip([command])
        return _raise_errors(reply)

    async def read(self, *commands: Command) -> list[Any]:
        """Read-only commands in one round trip. If the connection breaks under them (a
        restart, a failover, an idle connection dropped on the way) they are asked once more
        on a new one: repeating a read changes nothing. A server that cannot be reached at
        all is not tried twice."""
        try:
            replies = await self._round_trip(commands, may_repeat=True)
        except _BrokenUnderCall:
            replies = await self._round_trip(commands)
        return [_raise_errors(reply) for reply in replies]

    async def transaction(self, *commands: Command) -> list[Any]:
        """Several commands in MULTI/EXEC, one round trip: run as one, no other client's
        command in between; one refused while queueing (unknown, wrong arity) aborts all."""
        replies = await self._round_trip([("MULTI",), *commands, ("EXEC",)])
        for reply in replies[:-1]:  # a command refused while queueing aborts the EXEC
            _raise_errors(reply)
        results = _raise_errors(replies[-1])
        if results is None:
            raise rx.WatchError("transaction aborted")
        return [_raise_errors(result) for result in results]

    async def eval(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        """Run a Lua script by its SHA1, sending its source once if the server lacks it."""
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except rx.NoScriptError:  # a restarted or flushed server: EVAL also caches it
            return await self.execute("EVAL", script.source, len(keys), *keys, *args)

    async def close(self) -> None:
        """Final: calls waiting or made after this fail with ConnectionError."""
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # -- the connection -----------------------------------------------------------------
    async def _round_trip(self, commands: Sequence[Command], *,
                          may_repeat: bool = False) -> list[Any]:
        # Redis answers an empty command with nothing at all and an empty batch would wait
        # for no reply: either would hand later replies to the wrong callers.
        if not commands:
            return []
        if not all(commands):
            raise ValueError("empty Redis command")
        if self._closed:
            raise rx.ConnectionError("Redis client closed")
        connection = self._connection
        if connection is None or connection.broken is not None:
            connection = await self._connect()
        try:
            return await connection.send(pack(commands), len(commands))
        except rx.ConnectionError as exc:  # not a timeout: that may be a slow server
            if not may_repeat or self._closed:
                raise
            raise _BrokenUnderCall(*exc.args) from exc

    async def _connect(self) -> _Connection:
        attempt = self._connecting
        if attempt is None:
            attempt = self._connecting = asyncio.ensure_future(self._open_and_greet())
            attempt.add_done_callback(self._connected)
        try:
            # shield: a caller that gives up (cancelled) must not cancel the others' attempt
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            if attempt.cancelled() and self._closed:  # close() ended it, not our caller
                raise rx.ConnectionError("Redis client closed") from None
            raise

    def _connected(self, attempt: asyncio.Future[_Connection]) -> None:
        if self._connecting is attempt:
            self._connecting = None
        if attempt.cancelled() or attempt.exception() is not None:
            return
        if self._closed:  # opened while close() ran
            attempt.result().close()
        else:
            self._connection = attempt.result()

    async def _open_and_greet(self) -> _Connection:
        connection = await self._open()
        handshake = self._handshake()
        try:
            replies = await connection.send(pack(handshake), len(handshake))
            # AUTH and SELECT must succeed; the name is a courtesy that a proxy in front of
            # Redis may refuse.
            for reply in replies[:-1]:
                _raise_errors(reply)
        except BaseException:
            connection.close()
            raise
        return connection

    def _handshake(self) -> list[Command]:
        options = self._options
        commands: list[Command] = []
        if options.get("password"):
            user = options.get("username")
            commands.append(("AUTH", user, options["password"]) if user
                            else ("AUTH", options["password"]))
        if options.get("db"):
            commands.append(("SELECT", options["db"]))
        commands.append(("CLIENT", "SETNAME", self._client_name))  # for CLIENT LIST
        return commands

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        options = self._options

        def protocol() -> _Connection:
            return _Connection(loop, self._timeout)

        try:
            async with asyncio.timeout(self._timeout):
                if "path" in options:
                    _, connection = await loop.create_unix_connection(protocol, options["path"])
                else:
                    tls = ssl.create_default_context() if self._tls else None
                    _, connection = await loop.create_connection(
                        protocol, options.get("host", "localhost"), options.get("port", 6379),
                        ssl=tls)
        except (OSError, TimeoutError) as exc:
            raise rx.ConnectionError(f"Error connecting to Redis: {exc!r}") from exc
        return connection
