"""create_app(settings) -> Starlette. The lifespan opens the database, Redis and the mail queue."""

from __future__ import annotations

import contextlib
import gc
import logging
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis
from databases import Database
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp

from service.config import Settings, secret_bytes_needed
from service.core.accounts import AccountService
from service.core.admin import AdminService
from service.core.alerts import Alerts
from service.core.authentication import Authenticator
from service.core.cached_users import CachedUsers
from service.core.deletion import AccountDeletion
from service.core.devices import DeviceTokens
from service.core.health import Health
from service.core.limits import RateLimiter
from service.core.passwords import PasswordHasher
from service.core.recovery import RecoveryService
from service.core.sessions import SessionService
from service.core.tokens import TokenCodec
from service.errors import AuthServiceError, MethodNotAllowed, NotFound, ServiceUnavailable
from service.http import admin as admin_routes
from service.http import docs
from service.http.routes import ROUTES
from service.http.web import CORSMiddleware, json_response
from service.local import embedded_redis
from service.store import jwt_secret, sealed_links
from service.store.mail import MailQueue
from service.store.redis_store import RedisStore
from service.store.redis_wire import RedisWire
from service.store.sessions import SessionStore
from service.store.sqlite_pool import SQLDatabase
from service.store.users import UserStore

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


def redis_clients(settings: Settings) -> tuple[RedisWire, redis.Redis]:
    """The API's own lean client, and redis-py's for RQ; both time out rather than hang."""
    url = embedded_redis.resolve_url(settings.redis.url, settings.data_dir)
    timeout = settings.redis.socket_timeout
    return (RedisWire(url, timeout=timeout),
            redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                 health_check_interval=30))


def database(settings: Settings) -> Database:
    url = settings.database.url
    if url.startswith("sqlite"):
        return SQLDatabase(url, timeout=15)
    # A server that stops answering (no RST: a partition, a frozen VM) must be a 503 after
    # `timeout`, not a request that hangs: asyncpg has no statement timeout by default.
    timeout = settings.database.timeout
    return Database(url.replace("postgres://", "postgresql://", 1), min_size=1, max_size=10,
                    timeout=timeout, command_timeout=timeout)


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


def create_app(settings: Settings, *, clock: Callable[[], float] = time.time,
               freeze_heap: bool = False) -> Starlette:
    """Build the service from explicit settings; nothing is read from the environment here.

    freeze_heap: for a server process (authsvc serve), move everything alive once startup is
    done out of the cyclic garbage collector's reach (gc.freeze): some 75,000 long-lived
    objects that every full collection would walk again, stalling all requests in flight
    (profile GET p99 52 ms -> 9 ms, bench/README.md). Not for tests, which build many apps
    in one process and must get their garbage back.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        secret = jwt_secret.resolve(settings.jwt.secret, settings.data_dir,
                                    secret_bytes_needed(settings.jwt.algorithm))
        async_redis, sync_redis = redis_clients(settings)
        db = database(settings)
        await db.connect()
        hasher = PasswordHasher(settings.passwords)
        store = RedisStore(async_redis, settings.redis.prefix, user_ttl=settings.jwt.refresh_ttl)
        users = UserStore(db)
        session_store = SessionStore(async_redis, settings.redis.prefix,
                                     index_ttl=settings.jwt.refresh_ttl + settings.jwt.leeway + 1)
        mail = MailQueue(settings, sync_redis, sealed_links.link_key(secret))
        limiter = RateLimiter(settings.rate_limit, store)
        codec = TokenCodec(settings.jwt, secret)
        rows = CachedUsers(users, store, session_store)
        sessions = SessionService(
            settings, users, store, session_store, hasher, codec,
            DeviceTokens(secret, settings.lockout.device_ttl), limiter,
            Alerts(settings.alerts, store, mail), rows, clock)
        deletion = AccountDeletion(users, session_store)
        app.state.authenticator = Authenticator(codec, session_store, rows, clock)
        app.state.sessions = sessions
        app.state.accounts = AccountService(settings, users, store, session_store, hasher,
                                            limiter, sessions)
        app.state.recovery = RecoveryService(settings, users, store, session_store, hasher,
                                             mail, limiter)
        app.state.deletion = deletion
        app.state.admin = AdminService(users, store, session_store, deletion)
        app.state.health = Health(users, store)
        if freeze_heap:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            hasher.close()
            await db.disconnect()
            await async_redis.close()
            sync_redis.close()

    app = _CorsOutermost(
        _cors(settings),
        routes=[*ROUTES, *admin_routes.ADMIN_ROUTES, *docs.routes()],
        # Exception is Starlette's last resort (500); the rest are answered as ordinary errors.
        exception_handlers={Exception: _on_error, HTTPException: _on_error,
                            AuthServiceError: _on_error, ClientDisconnect: _on_client_gone,
                            **dict.fromkeys(UNAVAILABLE, _on_error)},
        lifespan=lifespan)
    # `/healthz/` would get a bare 307 from the router, without API_HEADERS: answer 404 instead
    # (every API path is served with and without its trailing slash, see routes.slash_optional).
    app.router.redirect_slashes = False
    app.state.settings = settings
    return app


class _CorsOutermost(Starlette):
    """Starlette, with `outer` middleware around its whole stack. Starlette puts the 500
    handler (ServerErrorMiddleware) outside every user middleware, so a 500 carried no CORS
    headers and a browser app saw only an opaque network error instead of the answer."""

    def __init__(self, outer: list[Middleware], **options: Any) -> None:
        self._outer = outer
        super().__init__(**options)

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()
        for cls, args, kwargs in reversed(self._outer):
            app = cls(app, *args, **kwargs)
        return app


def _cors(settings: Settings) -> list[Middleware]:
    """CORS only for the origins listed in [cors] allow_origins; none listed: no CORS at all."""
    cors = settings.cors
    if not cors.allow_origins:
        return []
    return [Middleware(CORSMiddleware, allow_origins=list(cors.allow_origins),
                       allow_credentials=cors.allow_credentials, max_age=cors.max_age,
                       allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
                       allow_headers=["Authorization", "Content-Type"],
                       expose_headers=["Retry-After"])]

