"""create_app(settings) -> Starlette. The lifespan opens the database, Redis and the mail queue."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis
import redis.asyncio
from databases import Database
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from . import docs, embedded_redis, jwt_secret
from .config import Settings, secret_bytes_needed
from .errors import AuthServiceError, MethodNotAllowed, NotFound, ServiceUnavailable
from .mail import MailQueue
from .passwords import PasswordHasher
from .redis_store import RedisStore
from .routes import ROUTES
from .services import AuthService
from .tokens import TokenCodec
from .users import UserStore
from .web import json_response

log = logging.getLogger("authsvc.app")

try:  # asyncpg is present whenever PostgreSQL is used
    from asyncpg.exceptions import PostgresConnectionError as _PgConnectionError
    from asyncpg.exceptions import TooManyConnectionsError as _PgTooMany
    _PG_DOWN: tuple[type[BaseException], ...] = (_PgConnectionError, _PgTooMany)
except ImportError:  # pragma: no cover
    _PG_DOWN = ()

# Failures of a backing service, not of the request: answered 503 so clients retry.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError, ConnectionError, TimeoutError, sqlite3.OperationalError,
    *_PG_DOWN)


# uvicorn must not rewrite the client address from X-Forwarded-For: the app decides whom to
# believe ([server] trusted_proxies).
UVICORN_OPTIONS: dict[str, Any] = {"proxy_headers": False, "server_header": False}


def redis_clients(settings: Settings) -> tuple[redis.asyncio.Redis, redis.Redis]:
    """Async client for the API, sync client for RQ; both time out rather than hang."""
    url = embedded_redis.resolve_url(settings.redis.url, settings.data_dir)
    timeout = settings.redis.socket_timeout
    options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
                               "health_check_interval": 30}
    return (redis.asyncio.Redis.from_url(url, **options),
            redis.Redis.from_url(url, **options))


def database(settings: Settings) -> Database:
    url = settings.database.url
    if url.startswith("sqlite"):
        return Database(url, timeout=15)
    return Database(url.replace("postgres://", "postgresql://", 1), min_size=1, max_size=10)


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
    if isinstance(exc, UNAVAILABLE):
        log.warning("backing service unavailable on %s %s: %r", request.method,
                    request.url.path, exc)
        return ServiceUnavailable()
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return AuthServiceError()


async def _on_error(request: Request, exc: Exception) -> Response:
    error = _as_service_error(request, exc)
    return json_response(error.body(), error.status_code, error.headers())


def create_app(settings: Settings, *, clock: Callable[[], float] = time.time) -> Starlette:
    """Build the service from explicit settings; nothing is read from the environment here."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        secret = jwt_secret.resolve(settings.jwt.secret, settings.data_dir,
                                    secret_bytes_needed(settings.jwt.algorithm))
        async_redis, sync_redis = redis_clients(settings)
        db = database(settings)
        await db.connect()
        hasher = PasswordHasher(settings.passwords)
        store = RedisStore(async_redis, settings.redis.prefix, user_ttl=settings.jwt.refresh_ttl)
        app.state.service = AuthService(
            settings, UserStore(db), store, hasher, TokenCodec(settings.jwt, secret),
            MailQueue(settings, sync_redis), clock)
        app.state.database = db
        app.state.redis = async_redis
        try:
            yield
        finally:
            hasher.close()
            await db.disconnect()
            await async_redis.aclose()
            sync_redis.close()

    app = Starlette(
        routes=[*ROUTES, *docs.routes()],
        # Exception is Starlette's last resort (500); the rest are answered as ordinary errors.
        exception_handlers={Exception: _on_error, HTTPException: _on_error,
                            AuthServiceError: _on_error,
                            **{cls: _on_error for cls in UNAVAILABLE}},
        lifespan=lifespan)
    app.state.settings = settings
    return app

