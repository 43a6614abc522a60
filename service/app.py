"""create_app(settings) -> Starlette. The lifespan opens the database, Redis and the mail queue."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import AsyncIterator, Callable

import redis
from databases import Database
from starlette.applications import Starlette

from service.config import Settings
from service.core.accounts import AccountService
from service.core.admin import AdminService
from service.core.alerts import Alerts
from service.core.authentication import Authenticator
from service.core.cached_users import CachedUsers
from service.core.deletion import AccountDeletion
from service.core.devices import DeviceTokens
from service.core.health import Health
from service.core.limits import RateLimiter
from service.core.lockout import Lockout
from service.core.mfa import MfaService
from service.core.mfa_crypto import MfaKey
from service.core.mfa_login import MfaLogin
from service.core.migration import OldTokens
from service.core.passkeys import Assertions, PasskeyService
from service.core.passwords import PasswordHasher
from service.core.recovery import RecoveryService
from service.core.sessions import SessionService
from service.core.step_up import StepUp
from service.core.tokens import TokenCodec
from service.http import admin as admin_routes
from service.http import docs, ui
from service.http.cors import CorsOutermost, cors_middleware
from service.http.error_handler import error_handlers
from service.http.routes import ROUTES
from service.local import embedded_redis
from service.store import jwt_secret, sealed_links
from service.store.cache import UserCache
from service.store.counters import LimitCounters
from service.store.keys import RedisKeys
from service.store.legacy import LegacyStore
from service.store.links import OneTimeLinks
from service.store.mail import MailQueue
from service.store.mfa import MfaStore
from service.store.mfa_logins import PendingLogins
from service.store.passkeys import PasskeyStore
from service.store.redis_wire import RedisWire, check_url
from service.store.sessions import SessionStore
from service.store.sqlite_pool import SQLDatabase
from service.store.users import UserStore
from service.store.webauthn_challenges import Challenges


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


def create_app(settings: Settings, *, clock: Callable[[], float] = time.time,
               freeze_heap: bool = False) -> Starlette:
    """Build the service from explicit settings; nothing is read from the environment here.

    freeze_heap: for a server process (authsvc serve), move everything alive once startup is
    done out of the cyclic garbage collector's reach (gc.freeze): some 75,000 long-lived
    objects that every full collection would walk again, stalling all requests in flight
    (profile GET p99 52 ms -> 9 ms, bench/README.md). Not for tests, which build many apps
    in one process and must get their garbage back.

    Raises ConfigError for a [redis] url the API's Redis client would not honour.
    """
    if settings.redis.url != "embedded":
        check_url(settings.redis.url)  # now, not at the first request (cli.py: before all)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        secret = jwt_secret.for_settings(settings)
        async_redis, sync_redis = redis_clients(settings)
        db = database(settings)
        await db.connect()
        hasher = PasswordHasher(settings.passwords)
        keys = RedisKeys(settings.redis.prefix)
        cache = UserCache(async_redis, keys, ttl=settings.jwt.refresh_ttl)
        links = OneTimeLinks(async_redis, keys)
        counters = LimitCounters(async_redis, keys)
        users = UserStore(db)
        session_store = SessionStore(async_redis, keys,
                                     index_ttl=settings.jwt.refresh_ttl + settings.jwt.leeway + 1)
        mail = MailQueue(settings, sync_redis, sealed_links.link_key(secret))
        limiter = RateLimiter(settings.rate_limit, counters)
        codec = TokenCodec(settings.jwt, secret)
        rows = CachedUsers(users, cache, session_store)
        old_tokens = OldTokens(settings, users, LegacyStore(db), session_store)
        alerts = Alerts(settings.alerts, links, mail)
        lockout = Lockout(settings.lockout, counters)
        mfa_store = MfaStore(db)
        pending = PendingLogins(async_redis, keys, ttl=settings.mfa.login_ttl)
        step_up = StepUp(settings.mfa, mfa_store, users, clock)
        sessions = SessionService(
            settings, users, cache, counters, session_store, hasher, codec,
            DeviceTokens(secret, settings.lockout.device_ttl), limiter, alerts, rows,
            old_tokens, mfa_store, pending, clock)
        deletion = AccountDeletion(users, session_store)
        app.state.authenticator = Authenticator(codec, session_store, rows, old_tokens,
                                                mfa_store, settings.mfa.require_for_roles,
                                                clock)
        app.state.sessions = sessions
        accounts = AccountService(settings, users, cache, counters, session_store, hasher,
                                  limiter, sessions, step_up)
        mfa_key = MfaKey(jwt_secret.mfa_key(settings))
        passkey_store = PasskeyStore(db)
        challenges = Challenges(async_redis, keys)
        assertions = Assertions(settings, passkey_store, challenges, clock)
        mfa = MfaService(settings.mfa, users, mfa_store, mfa_key, sessions, accounts, step_up,
                         alerts, lockout, limiter, assertions, clock)
        app.state.passkeys = PasskeyService(
            settings, users, passkey_store, mfa_store, mfa_key, assertions, challenges,
            sessions, step_up, pending, alerts, limiter, clock)
        app.state.accounts = accounts
        app.state.mfa = mfa
        app.state.mfa_login = MfaLogin(settings.mfa, users, pending, mfa, sessions, lockout,
                                       limiter, clock)
        app.state.step_up = step_up
        app.state.recovery = RecoveryService(settings, users, cache, links, session_store,
                                             hasher, mail, limiter)
        app.state.deletion = deletion
        app.state.admin = AdminService(users, cache, session_store, deletion)
        app.state.health = Health(users, cache)
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

    app = CorsOutermost(
        cors_middleware(settings.cors),
        routes=[*ROUTES, *admin_routes.ADMIN_ROUTES, *docs.routes(), *ui.routes(settings.ui)],
        exception_handlers=error_handlers(),
        lifespan=lifespan)
    # `/healthz/` would get a bare 307 from the router, without API_HEADERS: answer 404 instead
    # (every API path is served with and without its trailing slash, see routes.slash_optional).
    app.router.redirect_slashes = False
    app.state.settings = settings
    return app
