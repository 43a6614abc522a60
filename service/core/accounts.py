"""Accounts: register, re-authentication, password change and profile. Stores passed in;
sessions are started and renewed by the SessionService."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from service.config import Settings
from service.core.authentication import Caller
from service.core.cached_users import cached
from service.core.limits import OneHashPerUser, RateLimiter, client_key, identifier_key
from service.core.lockout import Lockout
from service.core.passwords import PasswordHasher, policy_problems, usable
from service.core.sessions import Client, SessionService, SignIn
from service.core.step_up import StepUp
from service.core.tokens import TokenPair
from service.errors import TokenInvalid, ValidationFailed
from service.store.cache import CachedUser, UserCache
from service.store.counters import LimitCounters
from service.store.sessions import SessionStore
from service.store.users import DuplicateUser, User, UserStore

log = logging.getLogger("authsvc.accounts")

REQUIRED = "This field is required."
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
class PasswordChangeInput:
    """A parsed password change: the current password and the new one."""

    old_password: str
    password: str


class AccountService:
    """Creates accounts and changes them on their owner's behalf."""

    def __init__(self, settings: Settings, users: UserStore, cache: UserCache,
                 counters: LimitCounters, session_store: SessionStore, hasher: PasswordHasher,
                 limiter: RateLimiter, sessions: SessionService, step_up: StepUp) -> None:
        self._s = settings
        self._users = users
        self._cache = cache
        self._session_store = session_store
        self._hasher = hasher
        self._limiter = limiter
        self._sessions = sessions
        self._step_up = step_up
        self._one_hash = OneHashPerUser(counters)
        self._lockout = Lockout(settings.lockout, counters)

    async def register(self, data: RegisterInput, client: Client) -> SignIn:
        """Uniqueness is judged here; every other error comes from inputs.register_input."""
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
            await self._session_store.purge_user(user.id)
            await self._cache.put(cached(user))
            if self._s.auth.require_email_verification:
                return SignIn(user, None)  # no tokens until the email is verified
            return SignIn(user, await self._sessions.start(cached(user), client))
        except BaseException:
            # Whole or not at all: without its session the account must not exist either,
            # or the client's retry would be told the name is taken.
            await self._users.delete(user.id)
            raise

    @asynccontextmanager
    async def reauthenticated(self, caller: Caller, password: str | None, client: Client, *,
                              field: str = "password",
                              message: str = "Your password was entered incorrectly.",
                              step_up: bool = True) -> AsyncIterator[User]:
        """Check the caller's current password before an account change (password change,
        account deletion), guarded like a login. One check per user in flight (another one
        meanwhile: 429 HashInFlight, Retry-After 1), held until the block ends, so hashing a
        new password inside it counts as in flight too. Each attempt is counted against the
        client IP's login rate, and wrong passwords against the account ([lockout]
        max_failures per window, then 429 with Retry-After, before any hashing). A wrong
        password: 400 on `field`. Yields the user's current row.

        `step_up`: the change is sensitive (step_up.py): an account with a second factor must
        also have signed in recently, judged before the password is (403, no oracle).
        `password` None: only a passwordless account (passkeys), whose recent sign-in is
        then its proof; any other account is told the field is required."""
        if step_up:
            await self._step_up.require(caller)
        async with self._one_hash.hold(caller.user.id):
            await self._limiter.check("login", client_key(client.ip))
            row = await self._users.by_id(caller.user.id)
            if row is None:
                raise TokenInvalid("user_not_found", "User not found").for_bearer()
            if password is None:
                if usable(row.password_hash) or not step_up:
                    raise ValidationFailed.on(field, REQUIRED)
                yield row  # passwordless: the recent sign-in step_up asked for is the proof
                return
            await self._lockout.reserve_reauth(row.id)
            result = await self._hasher.verify(row.password_hash, password)
            if not result.valid:
                raise ValidationFailed.on(field, message)
            await self._lockout.reauth_succeeded(row.id)
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
        await self._session_store.end_all(row.id, keep=caller.sid)
        # An old simplejwt access token names no session: the change starts one.
        pair = await (self._sessions.renew(user, caller) if caller.sid
                      else self._sessions.start(user, client))
        log.info("password changed for user %s", row.id)
        return pair

    async def update_profile(self, caller: Caller, display_name: str | None) -> CachedUser:
        """Set the caller's display name (None: unchanged); the profile as it now stands."""
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
