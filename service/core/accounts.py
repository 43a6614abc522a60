"""Register, login, refresh, logout, password change and profile: the rules, stores passed in."""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from service.config import Settings
from service.core.alerts import Alerts
from service.core.devices import DeviceTokens
from service.core.limits import OneHashPerUser, RateLimiter, client_key, device_key, identifier_key
from service.core.passwords import PasswordHasher, policy_problems
from service.core.tokens import ACCESS, REFRESH, Claims, TokenCodec, TokenPair
from service.errors import (
    EmailNotVerified,
    InvalidCredentials,
    LoginLocked,
    NotFound,
    RateLimited,
    TokenInvalid,
    ValidationFailed,
)
from service.store.cache import CachedUser, UserCache
from service.store.counters import LimitCounters
from service.store.sessions import RefreshOutcome, SessionInfo, SessionStore
from service.store.users import DuplicateUser, TokenState, User, UserStore

log = logging.getLogger("authsvc.services")

TAKEN = {"username": "A user with that username already exists.",
         "email": "A user with that email already exists."}


@dataclass(frozen=True)
class RegisterInput:
    """A parsed registration; `errors` holds every rule it broke that needs no database,
    so the service can add uniqueness errors and report them all together."""

    username: str
    email: str
    password: str
    display_name: str
    role: str
    errors: dict[str, list[str]]


@dataclass(frozen=True)
class LoginInput:
    identifier: str
    password: str
    device_token: str | None = None


@dataclass(frozen=True)
class PasswordChangeInput:
    old_password: str
    password: str


def _when(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def cached(user: User) -> CachedUser:
    return CachedUser(id=user.id, username=user.username, email=user.email,
                      display_name=user.display_name, role=user.role,
                      is_active=user.is_active, token_version=user.token_version)


@dataclass(frozen=True)
class Client:
    """Who is calling, as far as HTTP tells: recorded with the session it starts."""

    ip: str
    user_agent: str = ""


@dataclass(frozen=True)
class Caller:
    """An authenticated Bearer request: the user's current row and the token's session."""

    user: CachedUser
    sid: str


@dataclass(frozen=True)
class Session:
    user: CachedUser | User
    tokens: TokenPair | None
    device_token: str | None = None


@dataclass(frozen=True)
class Refreshed:
    access: str
    refresh: str | None


class AuthService:
    def __init__(self, settings: Settings, users: UserStore, cache: UserCache,
                 counters: LimitCounters, sessions: SessionStore, hasher: PasswordHasher,
                 codec: TokenCodec,
                 devices: DeviceTokens, limiter: RateLimiter, alerts: Alerts,
                 clock: Callable[[], float] = time.time) -> None:
        self._devices = devices
        self._limiter = limiter
        self._alerts = alerts
        self._s = settings
        self._users = users
        self._cache = cache
        self._counters = counters
        self._sessions = sessions
        self._hasher = hasher
        self._codec = codec
        self._clock = clock
        self._one_hash = OneHashPerUser(counters)

    async def health(self) -> None:
        """Raise if the database or Redis cannot be reached (mapped to 503)."""
        await self._users.ping()
        await self._cache.ping()

    # -- register / login ---------------------------------------------------------------
    async def register(self, data: RegisterInput, client: Client) -> Session:
        """Uniqueness is judged here; every other error comes from schemas.register_input."""
        # Limited before the uniqueness look-up: it tells whether an email is registered.
        await self._limiter.check("register", client_key(client.ip), identifier_key(data.email))
        errors = dict(data.errors)
        if data.username and data.email and not ("username" in errors and "email" in errors):
            for field in await self._users.taken(username=data.username, email=data.email):
                errors.setdefault(field, [TAKEN[field]])
        if errors:
            raise ValidationFailed(errors)
        password_hash = await self._hasher.hash(data.password)
        try:
            user = await self._users.create(
                username=data.username, email=data.email, display_name=data.display_name,
                role=data.role, password_hash=password_hash)
        except DuplicateUser as exc:  # lost a race with a concurrent registration
            raise ValidationFailed.on(exc.field, TAKEN[exc.field]) from exc
        try:
            # A new account starts with nothing of its id: an id can still come round again
            # (the highest row deleted before migration 0003, a database restored from a
            # backup), and the sessions Redis holds under it would refresh into this account.
            await self._sessions.purge_user(user.id)
            await self._cache.put(cached(user))
            if self._s.auth.require_email_verification:
                return Session(user, None)  # no tokens until the email is verified
            return Session(user, await self._start_session(cached(user), client))
        except BaseException:
            # Whole or not at all: without its session the account must not exist either,
            # or the client's retry would be told the name is taken.
            await self._users.delete(user.id)
            raise

    async def login(self, data: LoginInput, client: Client) -> Session:
        # The client's own limit first: requests it refuses spend no identifier's budget.
        await self._limiter.check("login", client_key(client.ip))
        user = await self._users.by_identifier(data.identifier)
        now = self._clock()
        device = (self._devices.verify(data.device_token, user.id, now)
                  if user is not None else None)
        # OWASP device cookies: a known device has budgets of its own (rate and failures), so
        # someone else's guesses at this identifier never lock its owner out of it.
        await self._limiter.check("login", device_key(device) if device
                                  else identifier_key(data.identifier))
        locks = self._lock_keys(data.identifier, user, device)
        withheld = await self._reserve(locks)
        # Unknown users cost the same hashing work as a wrong password.
        result = await self._hasher.verify(user.password_hash if user else None, data.password)
        if user is None or not result.valid or not user.is_active or withheld:
            raise InvalidCredentials()
        if self._s.lockout.enabled:
            if device:
                await self._counters.clear_failures(locks[0])
            else:
                await self._counters.give_back_attempts(locks)
        # Said only to someone who knows the password: it reveals nothing to a guesser.
        if self._s.auth.require_email_verification and not user.email_verified:
            raise EmailNotVerified()
        if result.new_hash:
            await self._users.upgrade_hash(user.id, user.password_hash, result.new_hash)
        row = cached(user)
        if not device and self._alerts.enabled:
            await self._alerts.send(row, "new_device",
                                    f"When: {_when(now)}. From: {client.ip}, "
                                    f"{client.user_agent or 'unknown browser'}.")
        await self._cache.fill(row)
        device_token = (data.device_token if device and data.device_token
                        else self._devices.issue(user.id, now))
        return Session(user, await self._start_session(row, client), device_token)

    @staticmethod
    def _lock_keys(identifier: str, user: User | None, device: str | None) -> list[str]:
        """The failure counters a login attempt spends, in order. A known device: its own.
        Anyone else: the submitted identifier's (folded, whether or not an account has it),
        then the account's, which its username and email share."""
        if device:
            return [device_key(device)]
        return [identifier_key(identifier)] + ([f"user:{user.id}"] if user is not None else [])

    async def _reserve(self, locks: list[str]) -> bool:
        """Count the attempt before the hash is checked, so parallel guesses cannot all pass
        under the limit. Past max_failures on the first counter: 429. Past it on the account's
        only (its other identifier was guessed at): True, the verdict is withheld. The attempt
        is still hashed and answered 401 whatever the password, exactly as for an identifier
        with no account: a lock on a username says nothing about which email shares its
        account, and guessing through both never doubles the account's budget."""
        lockout = self._s.lockout
        if not lockout.enabled:
            return False
        counts = await self._counters.reserve_attempts(locks, lockout.window, lockout.max_failures)
        if counts[0][0] > lockout.max_failures:
            raise LoginLocked(counts[0][1])
        return any(count > lockout.max_failures for count, _ in counts)

    async def _start_session(self, user: CachedUser, client: Client) -> TokenPair:
        now = self._clock()
        sid = uuid.uuid4().hex
        pair = self._codec.issue_pair(sub=str(user.id), role=user.role, ver=user.token_version,
                                      sid=sid, now=now)
        exp = pair.refresh_claims.exp
        await self._sessions.start(sid=sid, user_id=user.id, refresh_jti=pair.refresh_claims.jti,
                                   now=now, exp=exp, ttl=self._ttl(exp, now),
                                   user_agent=client.user_agent, ip=client.ip)
        return pair

    def _ttl(self, exp: int, now: float) -> int:
        """Seconds a token expiring at `exp` is still accepted (leeway included)."""
        return max(1, int(exp + self._s.jwt.leeway - now) + 1)

    # -- tokens -------------------------------------------------------------------------
    async def _missing(self, user_id: int) -> TokenInvalid:
        """A user with no row: end every session of the id at once (an account deleted by an
        operator in SQL, or a Redis that brought back a deleted account's keys)."""
        ended = await self._sessions.purge_user(user_id)
        if ended:
            log.warning("user %s no longer exists: %s sessions ended", user_id, ended)
        return TokenInvalid("user_not_found", "User not found")

    async def _user(self, user_id: int, user: CachedUser | None) -> CachedUser:
        """The cached row (from the same round trip as the session check), else the database."""
        if user is None:
            row = await self._users.by_id(user_id)
            if row is None:
                raise await self._missing(user_id)
            user = cached(row)
            await self._cache.fill(user)
        return user

    async def _reread(self, user_id: int) -> CachedUser:
        """The database's row, healing a cached one it has overtaken."""
        row = await self._users.by_id(user_id)
        if row is None:
            raise await self._missing(user_id)
        user = cached(row)
        await self._cache.replace_if_older(user)
        return user

    def _check_user(self, claims: Claims, user: CachedUser) -> None:
        if not user.is_active:
            raise TokenInvalid("user_inactive", "User is inactive")
        if claims.ver != user.token_version:
            raise TokenInvalid("password_changed",
                               "Token was issued before the password was changed")

    @staticmethod
    def _user_id(claims: Claims) -> int:
        if not claims.sub.isdigit() or len(claims.sub) > 18:
            raise TokenInvalid("malformed", "Token subject is malformed")
        return int(claims.sub)

    async def authenticate(self, access_token: str) -> Caller:
        """The user behind a Bearer token, or TokenInvalid; one Redis round trip.

        Judged on the cached row: an access token may live on it until the token expires
        (README, "What survives a Redis failure"). A token newer than the cached row proves
        the row is behind the database (a Redis rollback): it is re-read and healed."""
        claims = self._codec.decode(access_token, ACCESS, self._clock())
        user_id = self._user_id(claims)
        seen = await self._sessions.user_and_alive(user_id, claims.sid)
        if not seen.alive and seen.deleted:  # a deleted account's dead session: no database read
            raise TokenInvalid("session_ended", "Session has ended")
        user = await self._user(user_id, seen.user)
        if claims.ver > user.token_version:
            user = await self._reread(user_id)
        self._check_user(claims, user)
        if not seen.alive:
            raise TokenInvalid("session_ended", "Session has ended")
        return Caller(user, claims.sid)

    async def _refused(self, outcome: RefreshOutcome, claims: Claims,
                       user: CachedUser | None) -> TokenInvalid:
        if outcome.status == "reused":
            log.warning("refresh token reuse for user %s: session %s ended (theft suspected)",
                        claims.sub, claims.sid)
            if user is not None:
                await self._alerts.send(user, "token_reuse", f"When: {_when(self._clock())}.")
            return TokenInvalid("token_reused", "Token was already used: session ended")
        if outcome.status == "revoked":
            return TokenInvalid("token_revoked", "Token is blacklisted")
        if outcome.status == "stale":
            return TokenInvalid("password_changed",
                                "Token was issued before the password was changed")
        return TokenInvalid("session_ended", "Session has ended")

    async def _token_state(self, user_id: int, claims: Claims) -> TokenState:
        """The database's word on the token (issue 9.7), never the cache's: a Redis restored
        from an older snapshot, or a failover that lost writes, must not bring back what a
        password change or reset, a deactivation, a role change or a deletion ended. Each
        refusal also heals what Redis brought back."""
        state = await self._users.token_state(user_id)
        if state is None:
            raise await self._missing(user_id)
        if state.is_active and claims.ver == state.token_version:
            return state
        await self._cache.drop_if_older(user_id, state.token_version, state.is_active,
                                        state.role)
        if not state.is_active:
            # Deactivation ended them; a Redis restored from a snapshot brought them back.
            await self._sessions.end_all(user_id)
            raise TokenInvalid("user_inactive", "User is inactive")
        raise TokenInvalid("password_changed", "Token was issued before the password was changed")

    async def refresh(self, token: str) -> Refreshed:
        now = self._clock()
        claims = self._codec.decode(token, REFRESH, now)
        user_id = self._user_id(claims)
        state = await self._token_state(user_id, claims)
        ver, role = state.token_version, state.role
        if self._s.jwt.rotate_refresh_tokens:
            outcome = await self._sessions.rotate(
                user_id, claims.sid, claims.jti, ver, role, now,
                grace=self._s.jwt.rotation_grace, new_refresh_jti=uuid.uuid4().hex,
                new_access_jti=uuid.uuid4().hex, blacklist_ttl=self._ttl(claims.exp, now))
        else:
            outcome = await self._sessions.use_refresh(user_id, claims.sid, claims.jti, ver,
                                                       role, now)
        if outcome.status not in ("ok", "rotated", "grace"):
            alert = outcome.status == "reused" and self._alerts.enabled
            raise await self._refused(outcome, claims,
                                      await self._user(user_id, None) if alert else None)
        if outcome.status == "ok":
            # Never past the session's end (the refresh token's exp): issue 9.8.
            access, _ = self._codec.issue_access(sub=claims.sub, role=role, ver=ver,
                                                 sid=claims.sid, now=now,
                                                 session_end=claims.exp)
            return Refreshed(access, None)
        # The successor keeps the original expiry (refreshing never extends a session), and
        # is minted from the claims stored at rotation, so a racing tab gets the same pair.
        pair = self._codec.issue_pair(
            sub=claims.sub, role=role, ver=ver, sid=claims.sid,
            now=outcome.rotated_at, refresh_exp=claims.exp, refresh_jti=outcome.refresh_jti,
            access_jti=outcome.access_jti)
        return Refreshed(pair.access, pair.refresh)

    async def logout(self, token: str) -> None:
        """End the token's session and blacklist it; 400 (on `refresh_token`) for anything
        that cannot be revoked now."""
        now = self._clock()
        try:
            claims = self._codec.decode(token, REFRESH, now)
            user_id = self._user_id(claims)
            outcome = await self._sessions.logout(user_id, claims.sid, claims.jti, claims.ver,
                                                  self._ttl(claims.exp, now))
            user = await self._user(user_id, outcome.user)
            self._check_user(claims, user)
            if outcome.status != "ok":
                raise await self._refused(outcome, claims, user)
        except TokenInvalid as exc:
            raise ValidationFailed.on("refresh_token", exc.detail) from exc

    async def logout_all(self, caller: Caller) -> int:
        return await self._sessions.end_all(caller.user.id)

    async def list_sessions(self, caller: Caller) -> list[SessionInfo]:
        return await self._sessions.list(caller.user.id)

    async def end_session(self, caller: Caller, sid: str) -> None:
        if not await self._sessions.end(caller.user.id, sid):
            raise NotFound()

    @asynccontextmanager
    async def reauthenticated(self, caller: Caller, password: str, client: Client, *,
                              field: str = "password",
                              message: str = "Your password was entered incorrectly.",
                              ) -> AsyncIterator[User]:
        """Check the caller's current password before an account change (password change,
        account deletion), guarded like a login. One check per user in flight (another one
        meanwhile: 429 HashInFlight, Retry-After 1), held until the block ends, so hashing a
        new password inside it counts as in flight too. Each attempt is counted against the
        client IP's login rate, and wrong passwords against the account ([lockout]
        max_failures per window, then 429 with Retry-After, before any hashing). A wrong
        password: 400 on `field`. Yields the user's current row."""
        async with self._one_hash.hold(caller.user.id):
            await self._limiter.check("login", client_key(client.ip))
            row = await self._users.by_id(caller.user.id)
            if row is None:
                raise TokenInvalid("user_not_found", "User not found").for_bearer()
            locks = [f"reauth:{row.id}"]
            lockout = self._s.lockout
            if lockout.enabled:
                ((attempts, left),) = await self._counters.reserve_attempts(
                    locks, lockout.window, lockout.max_failures)
                if attempts > lockout.max_failures:
                    raise RateLimited(left)
            result = await self._hasher.verify(row.password_hash, password)
            if not result.valid:
                raise ValidationFailed.on(field, message)
            if lockout.enabled:
                await self._counters.give_back_attempts(locks)
            yield row

    async def change_password(self, caller: Caller, data: PasswordChangeInput,
                              client: Client) -> TokenPair:
        """New password; every other session ends, this one goes on with fresh tokens."""
        async with self.reauthenticated(caller, data.old_password, client, field="old_password",
                                        message="Your old password was entered incorrectly.",
                                        ) as row:
            problems = policy_problems(data.password, self._s.passwords,
                                       username=row.username, email=row.email)
            if problems:
                raise ValidationFailed({"password": problems})
            new_hash = await self._hasher.hash(data.password)
        await self._cache.forget(row.id)
        changed = await self._users.set_password(row.id, new_hash, row.token_version)
        if changed is None:  # a reset or another change landed meanwhile: that one stands
            raise TokenInvalid("password_changed",
                               "The password was changed meanwhile").for_bearer()
        user = cached(changed)  # re-read: never publish fields read before the hashing
        await self._cache.put(user)
        await self._sessions.end_all(row.id, keep=caller.sid)
        now = self._clock()
        pair = self._codec.issue_pair(sub=str(row.id), role=user.role, ver=user.token_version,
                                      sid=caller.sid, now=now)
        exp = pair.refresh_claims.exp
        await self._sessions.set_current(row.id, caller.sid, pair.refresh_claims.jti, now, exp,
                                         self._ttl(exp, now))
        log.info("password changed for user %s", row.id)
        return pair

    # -- profile ------------------------------------------------------------------------
    async def update_profile(self, caller: Caller, display_name: str | None) -> CachedUser:
        user = caller.user
        if display_name is None or display_name == user.display_name:
            return user
        await self._users.set_display_name(user.id, display_name)
        row = await self._users.by_id(user.id)
        if row is None:  # the account was deleted meanwhile
            raise TokenInvalid("user_not_found", "User not found").for_bearer()
        updated = cached(row)
        await self._cache.put(updated)
        return updated
