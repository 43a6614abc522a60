"""Bearer authentication: the user and session behind an access token, one Redis round trip."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from service.core.cached_users import CachedUsers, check_token_user, user_id_of
from service.core.migration import OldTokens
from service.core.tokens import ACCESS, ENROLMENT_SCOPE, Grant, TokenCodec
from service.errors import TokenInvalid
from service.store.cache import CachedUser
from service.store.mfa import MfaStore
from service.store.sessions import SessionStore

# An old simplejwt access token's: a password sign-in, never a recent one.
OLD_TOKEN_GRANT = Grant(("pwd",), 0)


@dataclass(frozen=True)
class Caller:
    """An authenticated Bearer request: the user's current row, the token's session ("" for
    an old simplejwt access token, which names none) and how and when it signed in (an old
    token's: never recently)."""

    user: CachedUser
    sid: str
    grant: Grant = OLD_TOKEN_GRANT


async def session_ended(sessions: SessionStore, sid: str) -> TokenInvalid:
    """The refusal of a token whose session is over: `token_reused` when reuse detection
    ended it (so every tab learns why), else `session_ended`."""
    if await sessions.end_reason(sid) == "token_reused":
        return TokenInvalid("token_reused", "Session ended: one of its refresh tokens was "
                                            "used twice")
    return TokenInvalid("session_ended", "Session has ended")


class Authenticator:
    """Judges access tokens on their signature, their session and their user's cached row."""

    def __init__(self, codec: TokenCodec, sessions: SessionStore, rows: CachedUsers,
                 old_tokens: OldTokens, mfa: MfaStore, require_mfa_for: tuple[str, ...] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self._codec = codec
        self._mfa = mfa
        self._require_mfa_for = require_mfa_for
        self._old = old_tokens
        self._sessions = sessions
        self._rows = rows
        self._clock = clock

    async def authenticate(self, access_token: str) -> Caller:
        """The user behind a Bearer token, or TokenInvalid; one Redis round trip.

        Judged on the cached row: an access token may live on it until the token expires
        (README, "What survives a Redis failure"). A token newer than the cached row proves
        the row is behind the database (a Redis rollback): it is re-read and healed."""
        now = self._clock()
        try:
            claims = self._codec.decode(access_token, ACCESS, now)
        except TokenInvalid as exc:
            # During the cut-over, maybe an old simplejwt token (no session of ours: sid "").
            return await self._old_caller(await self._old.access(access_token, now, exc))
        user_id = user_id_of(claims)
        seen = await self._sessions.user_and_alive(user_id, claims.sid)
        if not seen.alive and seen.deleted:  # a deleted account's dead session: no database read
            raise TokenInvalid("session_ended", "Session has ended")
        user = await self._rows.read(user_id, seen.user)
        if claims.ver > user.token_version:
            user = await self._rows.reread(user_id)
        check_token_user(claims, user)
        if not seen.alive:
            raise await session_ended(self._sessions, claims.sid)
        return Caller(user, claims.sid, claims.grant)

    async def _old_caller(self, user: CachedUser) -> Caller:
        """An old simplejwt token's caller: a sign-in long ago, and held to the enrolment of a
        second factor as a new sign-in would be ([mfa] require_for_roles)."""
        if (user.role in self._require_mfa_for
                and not (await self._mfa.factors(user.id)).any):
            return Caller(user, "", Grant(("pwd",), 0, ENROLMENT_SCOPE))
        return Caller(user, "", OLD_TOKEN_GRANT)

