"""The one place errors become answers: the service's exception tree (service/errors.py) is
rendered as API.md's bodies, a backing service's failure as a 503, anything else as a 500."""

from __future__ import annotations

import logging
import socket
import sqlite3
from collections.abc import Awaitable, Callable

import redis
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from service.errors import AuthServiceError, MethodNotAllowed, NotFound, ServiceUnavailable
from service.http.web import json_response

log = logging.getLogger("authsvc.app")

try:  # asyncpg is present whenever PostgreSQL is used
    from asyncpg import exceptions as _pg
    # Lost or refused connections (ConnectionDoesNotExistError: cut mid-query), a full server,
    # and a server shutting down, crashed or starting up (57P01, 57P02, 57P03).
    _PG_DOWN: tuple[type[BaseException], ...] = (
        _pg.PostgresConnectionError, _pg.TooManyConnectionsError, _pg.AdminShutdownError,
        _pg.CrashShutdownError, _pg.CannotConnectNowError)
except ImportError:  # pragma: no cover
    _PG_DOWN = ()

# Failures of a backing service, not of the request: answered 503 so clients retry.
# OSError covers what sockets raise below the drivers: refused or reset connections, an
# unreachable host (a plain OSError), a failed DNS look-up (socket.gaierror), and asyncio's
# "Multiple exceptions" when every address of a dual-stack name refuses. Redis answering
# OOM (noeviction: it must not forget a revocation) or READONLY (a failover) is an outage too.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
    redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError, redis.exceptions.ClusterDownError,
    OSError, socket.gaierror, TimeoutError, sqlite3.OperationalError, *_PG_DOWN)
# OSErrors that are bugs or misconfiguration on this machine, not an outage: 500.
_LOCAL_FAULTS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
                 PermissionError)


def _as_service_error(request: Request, exc: Exception) -> AuthServiceError:
    if isinstance(exc, AuthServiceError):
        return exc
    if isinstance(exc, HTTPException):
        if exc.status_code == 404:
            return NotFound()
        if exc.status_code == 405:
            return MethodNotAllowed(f'Method "{request.method}" not allowed.',
                                    allow=(exc.headers or {}).get("Allow", ""))
        error = AuthServiceError(str(exc.detail))
        error.status_code = exc.status_code
        return error
    if isinstance(exc, UNAVAILABLE) and not isinstance(exc, _LOCAL_FAULTS):
        log.warning("backing service unavailable on %s %s: %r", request.method,
                    request.url.path, exc)
        return ServiceUnavailable()
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return AuthServiceError()


async def _on_error(request: Request, exc: Exception) -> Response:
    error = _as_service_error(request, exc)
    return json_response(error.body(), error.status_code, error.headers())


async def _on_client_gone(request: Request, exc: Exception) -> Response:
    """The client left (or was cut off by [server] body_timeout) while its body was read: no
    fault of the service, and nobody to read an answer."""
    return json_response({"detail": "Client disconnected."}, 400)


Handler = Callable[[Request, Exception], Awaitable[Response]]


def error_handlers() -> dict[type[BaseException], Handler]:
    """Starlette's exception_handlers: Exception is its last resort (500); the rest are
    answered as ordinary errors."""
    return {Exception: _on_error, HTTPException: _on_error, AuthServiceError: _on_error,
            ClientDisconnect: _on_client_gone, **dict.fromkeys(UNAVAILABLE, _on_error)}
