"""Register, login, refresh, logout, password reset and profile: the rules, with stores passed in."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from .config import Settings
from .errors import InvalidCredentials, RateLimited, TokenInvalid, ValidationFailed
from .identity import fold
from .mail import MailQueue
from .passwords import PasswordHasher, policy_problems
from .redis_store import CachedUser, RedisStore
from .schemas import LoginInput, RegisterInput, ResetConfirmInput
from .tokens import ACCESS, REFRESH, Claims, TokenCodec, TokenPair
from .users import DuplicateUser, User, UserStore

log = logging.getLogger("authsvc.services")

TAKEN = {"username": "A user with that username already exists.",
         "email": "A user with that email already exists."}
BAD_RESET_TOKEN = "Invalid or expired token."


def cached(user: User) -> CachedUser:
    return CachedUser(id=user.id, username=user.username, email=user.email,
                      display_name=user.display_name, role=user.role,
                      is_active=user.is_active, token_version=user.token_version)


@dataclass(frozen=True)
class Session:
    user: CachedUser | User
    tokens: TokenPair


@dataclass(frozen=True)
class Refreshed:
    access: str
    refresh: str | None


class AuthService:
    def __init__(self, settings: Settings, users: UserStore, store: RedisStore,
                 hasher: PasswordHasher, codec: TokenCodec, mail: MailQueue,
                 clock: Callable[[], float] = time.time) -> None:
        self._s = settings
        self._users = users
        self._store = store
        self._hasher = hasher
        self._codec = codec
        self._mail = mail
        self._clock = clock

    async def health(self) -> None:
        """Raise if the database or Redis cannot be reached (mapped to 503)."""
        await self._users.ping()
        await self._store.ping()

    # -- abuse --------------------------------------------------------------------------
    async def _limit(self, scope: str, client_ip: str, identifier: str) -> None:
        """Per client IP and, separately, per submitted identifier (API.md [rate_limit])."""
        if not self._s.rate_limit.enabled:
            return
        rate = getattr(self._s.rate_limit, scope)
        counts = await self._store.hit(scope, [f"ip:{client_ip}", f"id:{fold(identifier)}"],
                                       rate.window)
        over = [left for count, left in counts if count > rate.limit]
        if over:
            raise RateLimited(max(over))

    # -- register / login ---------------------------------------------------------------
    async def register(self, data: RegisterInput, client_ip: str) -> Session:
        """Uniqueness is judged here; every other error comes from schemas.register_input."""
        # Limited before the uniqueness look-up: it tells whether an email is registered.
        await self._limit("register", client_ip, data.email)
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
        await self._store.put_user(cached(user))
        return Session(user, self._issue_pair(user.sub, user.role, user.token_version))

    async def login(self, data: LoginInput, client_ip: str) -> Session:
        await self._limit("login", client_ip, data.identifier)
        user = await self._users.by_identifier(data.identifier)
        # Unknown users cost the same hashing work as a wrong password.
        result = await self._hasher.verify(user.password_hash if user else None, data.password)
        if user is None or not result.valid or not user.is_active:
            raise InvalidCredentials()
        if result.new_hash:
            await self._users.upgrade_hash(user.id, user.password_hash, result.new_hash)
        await self._store.fill_user(cached(user))
        return Session(user, self._issue_pair(user.sub, user.role, user.token_version))

    def _issue_pair(self, sub: str, role: str, ver: int) -> TokenPair:
        return self._codec.issue_pair(sub=sub, role=role, ver=ver, now=self._clock())

    # -- tokens -------------------------------------------------------------------------
    async def _current_user(self, user_id: int, cached_user: CachedUser | None) -> CachedUser:
        if cached_user is None:
            row = await self._users.by_id(user_id)
            if row is None:
                raise TokenInvalid("user_not_found", "User not found")
            cached_user = cached(row)
            await self._store.fill_user(cached_user)
        return cached_user

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

    async def authenticate(self, access_token: str) -> CachedUser:
        """The user behind a Bearer token, or TokenInvalid."""
        claims = self._codec.decode(access_token, ACCESS, self._clock())
        user_id = self._user_id(claims)
        user = await self._current_user(user_id, await self._store.cached_user(user_id))
        self._check_user(claims, user)
        return user

    async def _live_refresh(self, token: str) -> tuple[Claims, CachedUser]:
        claims = self._codec.decode(token, REFRESH, self._clock())
        user_id = self._user_id(claims)
        cached_user, revoked = await self._store.user_and_blacklisted(user_id, claims.jti)
        if revoked:
            raise TokenInvalid("token_revoked", "Token is blacklisted")
        user = await self._current_user(user_id, cached_user)
        self._check_user(claims, user)
        return claims, user

    async def refresh(self, token: str) -> Refreshed:
        claims, user = await self._live_refresh(token)
        now = self._clock()
        access, _ = self._codec.issue(ACCESS, sub=claims.sub, role=user.role,
                                      ver=user.token_version, now=now)
        if not self._s.jwt.rotate_refresh_tokens:
            return Refreshed(access, None)
        if not await self._store.blacklist(claims.jti, self._codec.remaining(claims, now)):
            raise TokenInvalid("token_revoked", "Token is blacklisted")
        # The successor keeps the original expiry: refreshing never extends a session.
        refresh, _ = self._codec.issue(REFRESH, sub=claims.sub, role=user.role,
                                       ver=user.token_version, now=now, exp=claims.exp)
        return Refreshed(access, refresh)

    async def logout(self, token: str) -> None:
        """Revoke a refresh token; 400 (on `refresh_token`) for anything we cannot revoke now."""
        try:
            claims, _ = await self._live_refresh(token)
            revoked = await self._store.blacklist(claims.jti, self._codec.remaining(claims, self._clock()))
        except TokenInvalid as exc:
            raise ValidationFailed.on("refresh_token", exc.detail) from exc
        if not revoked:
            raise ValidationFailed.on("refresh_token", "Token is blacklisted")

    # -- password reset -----------------------------------------------------------------
    async def request_reset(self, email: str, client_ip: str) -> None:
        """Rate-limit only; the rest runs after the answer (see send_reset)."""
        await self._limit("password_reset", client_ip, email)

    async def send_reset(self, email: str) -> None:
        """Mint a reset token and queue the email; runs after the response, so known and
        unknown emails answer alike and no caller waits for SMTP."""
        try:
            user = await self._users.by_email(email)
            if user is None or not user.is_active:
                return
            token = secrets.token_urlsafe(32)
            await self._store.put_reset(token, user.id, user.token_version,
                                        self._s.password_reset.ttl)
            link = self._s.password_reset.url_template.replace("{token}", token)
            job_id = await self._mail.send_password_reset(user.email, user.username, link)
            log.info("password reset email queued for user %s (job %s)", user.id, job_id)
        except Exception:
            log.exception("could not queue a password reset email")

    async def confirm_reset(self, data: ResetConfirmInput) -> None:
        taken, ttl_left = await self._store.take_reset(data.token)
        if taken is None:
            raise ValidationFailed.on("token", BAD_RESET_TOKEN)
        user_id, version = taken
        try:
            user = await self._users.by_id(user_id)
            if user is None or not user.is_active or user.token_version != version:
                raise ValidationFailed.on("token", BAD_RESET_TOKEN)
            problems = policy_problems(data.password, self._s.passwords,
                                       username=user.username, email=user.email)
            if problems:
                raise ValidationFailed({"password": problems})
            new_version = await self._users.set_password(
                user.id, await self._hasher.hash(data.password))
        except ValidationFailed as exc:
            if exc.errors.keys() != {"token"}:  # a bad new password must not burn the link
                await self._store.restore_reset(data.token, user_id, version, ttl_left)
            raise
        except BaseException:
            await self._store.restore_reset(data.token, user_id, version, ttl_left)
            raise
        await self._store.put_user(replace(cached(user), token_version=new_version))
        log.info("password reset for user %s", user.id)

    # -- profile ------------------------------------------------------------------------
    async def update_profile(self, user: CachedUser, display_name: str | None) -> CachedUser:
        if display_name is None or display_name == user.display_name:
            return user
        await self._users.set_display_name(user.id, display_name)
        row = await self._users.by_id(user.id)
        assert row is not None
        updated = cached(row)
        await self._store.put_user(updated)
        return updated
