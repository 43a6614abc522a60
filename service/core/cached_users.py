"""The user rows the rules judge tokens on: the cache's copy when there is one, else the
database's, healing the cache from it. Shared by sessions (Bearer requests, refresh, logout)
and by every flow that publishes a row after writing it (accounts, recovery, admin)."""

from __future__ import annotations

import logging

from service.core.tokens import Claims
from service.errors import TokenInvalid
from service.store.cache import CachedUser, UserCache
from service.store.sessions import SessionStore
from service.store.users import TokenState, User, UserStore

log = logging.getLogger("authsvc.sessions")


def cached(user: User) -> CachedUser:
    """A database row in the cache's form (what tokens are judged on)."""
    return CachedUser(id=user.id, username=user.username, email=user.email,
                      display_name=user.display_name, role=user.role,
                      is_active=user.is_active, token_version=user.token_version)


class CachedUsers:
    """Reads a token's user from the cache or the database; a user with no row ends every
    session of its id."""

    def __init__(self, users: UserStore, cache: UserCache, sessions: SessionStore) -> None:
        self._users = users
        self._cache = cache
        self._sessions = sessions

    async def missing(self, user_id: int) -> TokenInvalid:
        """A user with no row: end every session of the id at once (an account deleted by an
        operator in SQL, or a Redis that brought back a deleted account's keys)."""
        ended = await self._sessions.purge_user(user_id)
        if ended:
            log.warning("user %s no longer exists: %s sessions ended", user_id, ended)
        return TokenInvalid("user_not_found", "User not found")

    async def read(self, user_id: int, user: CachedUser | None) -> CachedUser:
        """The cached row (`user`, from the same round trip as the session check), else the
        database's, which then fills the cache."""
        if user is None:
            row = await self._users.by_id(user_id)
            if row is None:
                raise await self.missing(user_id)
            user = cached(row)
            await self._cache.fill(user)
        return user

    async def reread(self, user_id: int) -> CachedUser:
        """The database's row, healing a cached one it has overtaken."""
        row = await self._users.by_id(user_id)
        if row is None:
            raise await self.missing(user_id)
        user = cached(row)
        await self._cache.replace_if_older(user)
        return user


def user_id_of(claims: Claims) -> int:
    """The user id a token names; a subject that is no id of ours is a malformed token."""
    if not claims.sub.isdigit() or len(claims.sub) > 18:
        raise TokenInvalid("malformed", "Token subject is malformed")
    return int(claims.sub)


def password_changed() -> TokenInvalid:
    return TokenInvalid("password_changed", "Token was issued before the password was changed")


def token_refusal(claims: Claims, user: CachedUser | TokenState) -> TokenInvalid | None:
    """Why a token is refused on its user's row (the cache's or the database's): the user is
    inactive, or the password changed after it was issued; None if it stands."""
    if not user.is_active:
        return TokenInvalid("user_inactive", "User is inactive")
    if claims.ver != user.token_version:
        return password_changed()
    return None


def check_token_user(claims: Claims, user: CachedUser) -> None:
    """Raise the token's refusal, if its user's row refuses it."""
    refused = token_refusal(claims, user)
    if refused is not None:
        raise refused
