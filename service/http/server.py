"""uvicorn, hardened: a size and a time limit on every request head, and a connection limit.

uvicorn's httptools protocol reads a request head for as long as a client takes to send it
and however large it grows, and accepts connections until the process runs out of file
descriptors. GuardedProtocol adds, for a few attribute checks per request ([server] settings):

- max_header_bytes: a head (request line and headers) past this many bytes is answered 431;
- header_timeout: a head still incomplete this many seconds after it began (or after the
  connection opened) ends the connection;
- body_timeout: so does a body still incomplete this many seconds after its head (the app
  reads a disconnect);
- a body that takes more than twice max_body_bytes (+ max_header_bytes) on the wire is
  answered 413: the app refuses larger bodies itself, but chunk trailers are headers uvicorn
  keeps in memory without a limit, and chunk extensions and a body's tail after the app's
  answer are read for nothing;
- send_timeout: an answer that cannot be written for this many seconds (a client that
  pipelines requests and reads none of the answers) ends the connection at once;
- max_connections: at the limit, a new connection takes the place of the oldest one draining
  after an error answer, else of the oldest one whose answer cannot be written (see
  send_timeout), else of the oldest one with no request in
  progress (idle keep-alive, or still sending its head); only when every one has a request
  in progress is the newcomer answered 503.

Its own answers (400 for what does not parse, 431, 503) carry the API's security headers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import resource
import time
from collections import OrderedDict
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from service.config import ServerSettings
from service.http.web import API_HEADERS

log = logging.getLogger("authsvc.server")

# uvicorn must not rewrite the client address from X-Forwarded-For: the app decides whom to
# believe ([server] trusted_proxies).
UVICORN_OPTIONS: dict[str, Any] = {"proxy_headers": False, "server_header": False}
LINGER = 2.0  # seconds an error answer's connection keeps draining what the client still sends
FILE_RESERVE = 128  # descriptors kept for the database, Redis, logs beside client connections


def _answer(status: int, detail: str, *extra: str) -> tuple[bytes, bytes]:
    """The status line, and the headers and body that follow the Date header."""
    body = json.dumps({"detail": detail}).encode()
    lines = [f"{k}: {v}" for k, v in API_HEADERS.items()] + list(extra) + [
        "content-type: application/json", f"content-length: {len(body)}", "connection: close"]
    return STATUS_LINE[status], "".join(f"{line}\r\n" for line in lines).encode() + b"\r\n" + body


BAD_REQUEST = _answer(400, "Invalid HTTP request.")
HEAD_TOO_LARGE = _answer(431, "Request header fields too large.")
BODY_TOO_LARGE = _answer(413, "Request body is too large.")
BUSY = _answer(503, "Service temporarily unavailable, try again shortly.", "retry-after: 5")


class _Draining(asyncio.Protocol):
    """After an error answer: read and drop what the client still sends, then close. Closing
    at once with unread input resets the connection, and the client may lose the answer."""

    def __init__(self, transport: asyncio.Transport, connections: set[Any],
                 loop: asyncio.AbstractEventLoop,
                 draining: OrderedDict[_Draining, None]) -> None:
        self.transport, self.connections, self.draining = transport, connections, draining
        self.timer = loop.call_later(LINGER, transport.close)
        connections.add(self)  # still a descriptor: counted, and closed at shutdown
        draining[self] = None  # answered already: the first to give way to a newcomer

    def data_received(self, data: bytes) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        self.timer.cancel()
        self.connections.discard(self)
        self.draining.pop(self, None)

    def shutdown(self) -> None:
        self.transport.close()


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above; see protocol_class()."""

    max_header_bytes: ClassVar[int] = ServerSettings.max_header_bytes
    header_timeout: ClassVar[float] = ServerSettings.header_timeout
    body_timeout: ClassVar[float] = ServerSettings.body_timeout
    max_body_bytes: ClassVar[int] = ServerSettings.max_body_bytes
    send_timeout: ClassVar[float] = ServerSettings.send_timeout
    max_connections: ClassVar[int] = ServerSettings.max_connections
    # Connections with no request in progress, oldest first: one table per server.
    idle: ClassVar[OrderedDict[GuardedProtocol, None]] = OrderedDict()
    # Connections whose answer waits for the client to read (flow control), oldest first.
    stalled: ClassVar[OrderedDict[GuardedProtocol, None]] = OrderedDict()
    # Connections reading and dropping input after an error answer (_Draining), oldest first.
    draining: ClassVar[OrderedDict[_Draining, None]] = OrderedDict()
    warned: ClassVar[float] = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_room: int | None = None  # bytes the current head may still take; None: body
        self.body_room = 0  # bytes the current body may still take on the wire
        self.timer: asyncio.TimerHandle | None = None  # the head's or the body's time limit
        self.send_timer: asyncio.TimerHandle | None = None  # an answer waiting to be written
        self.running: Any = None  # the request whose answer is in progress (a cycle)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections and not self._evict():
            self._warn()
            self._refuse(BUSY, drain=False)  # draining would hold a descriptor per refusal
            return
        self.idle[self] = None
        self.head_room = self.max_header_bytes
        self.timer = self.loop.call_later(self.header_timeout, self._timed_out)

    def data_received(self, data: bytes) -> None:
        room = self.head_room
        if room is None:
            self.body_room -= len(data)
            if self.body_room < 0:
                self._body_too_large()
                return
        if room is None or len(data) <= room:
            if room is not None:
                self.head_room = room - len(data)
            super().data_received(data)
        else:
            self._feed_past_room(data, room)
        if self.timer is None and not self.transport.is_closing():
            room = self.head_room
            if room is None:  # a body began and is not complete
                self.timer = self.loop.call_later(self.body_timeout, self._timed_out)
            elif room < self.max_header_bytes:  # a head began and is not complete
                self.timer = self.loop.call_later(self.header_timeout, self._timed_out)

    def _feed_past_room(self, data: bytes, room: int) -> None:
        """Feed what the head may still take; if the head has not ended within it, 431."""
        self.head_room = 0
        if room:
            super().data_received(data[:room])
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return  # answered 400 (or the connection was lost)
        if self.head_room == 0:  # the same head, with no room left
            self._refuse(HEAD_TOO_LARGE)
            return
        self.data_received(data[room:])  # the head ended: the rest is body or the next head

    def on_headers_complete(self) -> None:
        self.head_room = None
        self.body_room = 2 * self.max_body_bytes + self.max_header_bytes
        self.idle.pop(self, None)
        self._stop_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.head_room = self.max_header_bytes  # what arrives next is the next head
        self._stop_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.cycle.response_complete and not self.transport.is_closing():
            self.idle[self] = None  # no pipelined request started in its place

    def connection_lost(self, exc: Exception | None) -> None:
        self.idle.pop(self, None)
        self._stop_timer()
        self._stop_send_timer()
        running = self.running
        if running is not None and running is not self.cycle and not running.response_complete:
            # uvicorn tells only the last request it parsed (self.cycle) that the client left;
            # with requests pipelined behind it, the one in progress would write to the
            # closed transport (an error and a traceback per connection).
            running.disconnected = True
            running.message_event.set()
        super().connection_lost(exc)

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        self.running = cycle
        super()._start_asgi_task(cycle, app)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.send_timer is None and not self.transport.is_closing():
            self.stalled[self] = None
            self.send_timer = self.loop.call_later(self.send_timeout, self._send_timed_out)

    def resume_writing(self) -> None:
        self._stop_send_timer()
        super().resume_writing()

    def _stop_send_timer(self) -> None:
        self.stalled.pop(self, None)
        if self.send_timer is not None:
            self.send_timer.cancel()
            self.send_timer = None

    def _send_timed_out(self) -> None:
        self.send_timer = None
        self.stalled.pop(self, None)
        self.transport.abort()  # close() would wait for the client to read what is buffered

    def _body_too_large(self) -> None:
        cycle = self.cycle
        if cycle is None or not cycle.response_started:
            self._refuse(BODY_TOO_LARGE)
        elif cycle.response_complete:
            self._refuse(None)  # answered already (the app's 413): drop the rest, then close
        else:
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # mid-answer: a 400 cannot follow; the request sees it end
        else:
            self._refuse(BAD_REQUEST)

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _timed_out(self) -> None:
        self.timer = None
        if self.transport.is_closing():
            return
        if self.pipeline or (self.head_room is not None and self.cycle is not None
                             and not self.cycle.response_complete):
            # a pipelined request behind one in progress (reading is paused for it meanwhile)
            self.timer = self.loop.call_later(self.header_timeout, self._timed_out)
            return
        self.transport.close()

    def _evict(self) -> bool:
        """End the oldest connection draining after an error answer, else the oldest one whose
        answer cannot be written, else the oldest one with no request in progress; False if
        there is none."""
        if self.draining:
            answered, _ = self.draining.popitem(last=False)
            answered.transport.abort()
            return True
        if self.stalled:
            oldest, _ = self.stalled.popitem(last=False)
            oldest._stop_send_timer()
            oldest.transport.abort()
            return True
        if not self.idle:
            return False
        oldest, _ = self.idle.popitem(last=False)
        oldest.transport.close()
        return True

    def _refuse(self, answer: tuple[bytes, bytes] | None, *, drain: bool = True) -> None:
        """Write `answer` (None: the request was answered already) and end the connection."""
        self.idle.pop(self, None)
        self._stop_timer()
        self._stop_send_timer()  # the connection is no longer this protocol's
        self.head_room = self.max_header_bytes  # no limit to watch any more: arm no timer
        for cycle in {id(c): c for c in (self.running, self.cycle) if c is not None}.values():
            if not cycle.response_complete:
                # a request in progress: its answer would come after ours
                cycle.disconnected = True
                cycle.message_event.set()
        self.flow.resume_writing()
        if answer is not None:
            status, rest = answer
            date = b"".join(name + b": " + value + b"\r\n"
                            for name, value in self.server_state.default_headers)
            self.transport.write(status + date + rest)
        if drain and self.transport.can_write_eof():
            self.connections.discard(self)
            self.transport.write_eof()
            self.transport.set_protocol(_Draining(self.transport, self.connections, self.loop,
                                                  self.draining))
        else:
            self.transport.close()

    def _warn(self) -> None:
        now = time.monotonic()
        if now - type(self).warned >= 60:  # once a minute, not once per refused connection
            type(self).warned = now
            log.warning("%d connections, all with a request in progress: refusing new ones "
                        "with 503 ([server] max_connections)", len(self.connections) - 1)


def protocol_class(server: ServerSettings) -> type[GuardedProtocol]:
    """A GuardedProtocol with these limits and its own table of idle connections."""

    class Guarded(GuardedProtocol):
        max_header_bytes = server.max_header_bytes
        header_timeout = server.header_timeout
        body_timeout = server.body_timeout
        max_body_bytes = server.max_body_bytes
        send_timeout = server.send_timeout
        max_connections = server.max_connections
        # One table per server (per subclass): the base class's would be shared by all.
        idle: ClassVar[OrderedDict[GuardedProtocol, None]] = OrderedDict()
        stalled: ClassVar[OrderedDict[GuardedProtocol, None]] = OrderedDict()
        draining: ClassVar[OrderedDict[_Draining, None]] = OrderedDict()

    return Guarded


class PathOnlyAccessLog(logging.Filter):
    """Access-log lines name the path, never the query string: old-style links and careless
    clients put tokens there (the pages keep theirs in the URL fragment, which never reaches
    the server at all)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn's line: client, method, path with query, HTTP version, status.
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def hide_query_strings() -> None:
    """Install PathOnlyAccessLog on uvicorn's access logger (once; uvicorn's own logging set-up
    replaces its handlers, not its filters)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, PathOnlyAccessLog) for f in access.filters):
        access.addFilter(PathOnlyAccessLog())


def uvicorn_options(server: ServerSettings) -> dict[str, Any]:
    """What `authsvc serve` (and so `authsvc dev`) and the tests' servers give uvicorn."""
    return {**UVICORN_OPTIONS, "http": protocol_class(server), "ws": "none"}  # no WebSockets


def fit_file_limit(server: ServerSettings) -> ServerSettings:
    """Raise the soft limit on open files so that max_connections fit beside FILE_RESERVE;
    where the hard limit is lower, lower max_connections instead (with a warning)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = server.max_connections + FILE_RESERVE
    if soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft >= wanted:
        return server
    fitting = max(1, soft - FILE_RESERVE)
    log.warning("[server] max_connections lowered from %d to %d: the open file limit is %d "
                "(raise it with ulimit -n)", server.max_connections, fitting, soft)
    return dataclasses.replace(server, max_connections=fitting)
