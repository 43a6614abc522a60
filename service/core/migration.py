"""The cut-over from Django REST Framework + simplejwt: its tokens, as authsvc judges them.

An old refresh token's first use here starts an authsvc session tied to its jti (the
session id is derived from the jti, so two tabs' first uses meet in one session), recorded
in SQL; every later use goes on in that session, so logout, logout-all, `sessions/` and
rotation cover it like any other. An old token is judged as minted under token version 0
(the version an import gives): a password change or reset, a role change or an admin's
revoke here refuses it, as it refuses authsvc's own tokens. Old access tokens carry no
session: they are refused once a session of their user ends by a logout or everywhere
(`legacy_users.tokens_ended_at`); logging out everywhere also refuses the old refresh tokens
never used here (`sessions_ended_at`). Every use is logged (`simplejwt token used`),
so an operator sees when the old tokens have died out.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

from service.config import Settings
from service.core.cached_users import cached, token_refusal
from service.core.simplejwt import OldClaims, SimpleJwtCodec, not_old
from service.core.tokens import ACCESS, REFRESH, Claims
from service.errors import TokenInvalid
from service.store.cache import CachedUser
from service.store.legacy import LegacyStore, OldToken
from service.store.sessions import SessionStore
from service.store.users import User, UserStore

log = logging.getLogger("authsvc.migration")

# The token version an imported user starts with, and so the one old tokens are judged as.
IMPORTED_TOKEN_VERSION = 0
# Reasons for which authsvc's own codec refuses a token another codec may still accept.
_NOT_OURS = ("bad_signature", "malformed")
# Old access tokens already logged in this process (each is logged once, not per request).
_SEEN_LIMIT = 10_000


def session_id_for(jti: str) -> str:
    """The authsvc session an old refresh token's uses go on in."""
    return hashlib.sha256(b"simplejwt:" + jti.encode()).hexdigest()[:32]


def _not_ours(exc: TokenInvalid) -> bool:
    """Whether authsvc's refusal leaves room for an old token (another key, other claims)."""
    return exc.reason in _NOT_OURS


@dataclass(frozen=True)
class OldRefresh:
    """An old refresh token, resolved: its claims as authsvc's, and its record here."""

    claims: Claims
    record: OldToken | None
    old: OldClaims
    user: User  # the database's row, read to resolve the token


class OldTokens:
    """Decodes simplejwt tokens and ties them to authsvc's users and sessions."""

    def __init__(self, settings: Settings, users: UserStore, legacy: LegacyStore,
                 sessions: SessionStore) -> None:
        self._codec = SimpleJwtCodec(settings.migration, settings.jwt.leeway)
        self._users = users
        self._legacy = legacy
        self._sessions = sessions
        self._leeway = settings.jwt.leeway
        self._seen: set[str] = set()
        if settings.migration.enabled:
            until = settings.migration.accept_until
            if self._codec.accepting(time.time()):
                log.info("accepting the old service's simplejwt tokens until %s", until)
            else:
                log.warning("[migration] accept_until (%s) has passed: old simplejwt tokens "
                            "are refused; remove [migration]", until)

    def accepting(self, now: float) -> bool:
        return self._codec.accepting(now)

    async def _user(self, old: OldClaims) -> User:
        user = await self._users.by_legacy_id(old.legacy_id)
        if user is None:
            raise TokenInvalid("user_not_found", "User not found")
        return user

    @staticmethod
    def _as_claims(old: OldClaims, user_id: int, role: str, sid: str) -> Claims:
        return Claims(sub=str(user_id), jti=old.jti, iat=old.iat, exp=old.exp,
                      token_type=old.token_type, role=role, ver=IMPORTED_TOKEN_VERSION, sid=sid)

    def _decode(self, token: str, expected_type: str, now: float,
                ours: TokenInvalid) -> OldClaims:
        """The old token behind a token authsvc's codec refused (`ours`), or `ours` raised
        again: outside the window, or when this is no old token either (not_old), authsvc's
        own refusal is the answer."""
        if not (_not_ours(ours) and self.accepting(now)):
            raise ours
        try:
            return self._codec.decode(token, expected_type, now)
        except TokenInvalid as exc:
            raise ours if not_old(exc) else exc from None

    async def refresh(self, token: str, now: float, ours: TokenInvalid) -> OldRefresh:
        """An old refresh token as authsvc's claims; TokenInvalid when it is refused here
        (blacklisted on the old side, logged out or ended everywhere here, its user gone)."""
        old = self._decode(token, REFRESH, now, ours)
        user = await self._user(old)
        record = await self._legacy.token(old.jti)
        if record is not None and record.revoked:
            raise TokenInvalid("token_revoked", "Token is blacklisted")
        await self._check_not_ended(old)
        sid = record.sid if record is not None and record.sid else session_id_for(old.jti)
        return OldRefresh(self._as_claims(old, user.id, user.role, sid), record, old, user)

    def _ended(self, old: OldClaims, ended: int | None) -> bool:
        """Issued before `ended`, as far as clocks tell: old tokens are taken up to `leeway`
        seconds ahead of this clock, so the cut-off reaches that far too (the old service
        issues nothing after the switch: no token it rightly made is that new)."""
        return ended is not None and old.iat <= ended + self._leeway

    async def _check_not_ended(self, old: OldClaims) -> None:
        """Logout everywhere ended the user's old refresh tokens issued before it, also those
        never used here (they had no session to end)."""
        ended = (await self._legacy.cutoffs(old.legacy_id)).refresh
        if self._ended(old, ended):
            raise TokenInvalid("session_ended", "Session has ended")

    async def start_session(self, found: OldRefresh, now: float, *, user_agent: str,
                            ip: str) -> None:
        """The first use of an old refresh token: its session, then the SQL record that it
        was used (a lost Redis must never let the token start a second one). A logout or a
        logout everywhere that landed meanwhile wins: the session ends again (they write SQL
        before they end sessions, this writes Redis before it reads SQL, so one of the two
        always sees the other). So does a record that cannot be written: the retry starts
        the session anew."""
        claims = found.claims
        user_id = int(claims.sub)
        ttl = max(1, int(claims.exp + self._leeway - now) + 1)
        await self._sessions.start_if_absent(
            sid=claims.sid, user_id=user_id, refresh_jti=claims.jti, now=now, exp=claims.exp,
            ttl=ttl, user_agent=user_agent, ip=ip)
        try:
            bound = await self._legacy.bind(claims.jti, found.old.legacy_id, claims.sid,
                                            claims.exp)
            if bound.revoked or bound.sid != claims.sid:
                raise TokenInvalid("token_revoked", "Token is blacklisted")
            await self._check_not_ended(found.old)
        except BaseException:
            await self._sessions.end(user_id, claims.sid)
            raise
        log.info("simplejwt token used: refresh, first use, user %s, session %s started",
                 user_id, claims.sid)

    async def revoke(self, found: OldRefresh, now: float) -> None:
        """Logout with an old refresh token: refused for good (in SQL), and its user's old
        access tokens with it (they name no session to end); then a session a racing first
        use may have started ends (the caller ends one the token was already bound to)."""
        user_id = int(found.claims.sub)
        await self._legacy.revoke(found.claims.jti, found.old.legacy_id, found.claims.exp)
        await self._legacy.end_old_tokens(user_id, int(now), refresh_too=False)
        if found.record is None:
            await self._sessions.end(user_id, found.claims.sid)
        log.info("simplejwt token used: logout, user %s", user_id)

    async def end_old_tokens(self, user_id: int, now: float, *, everywhere: bool) -> None:
        """A session of the user ended here (`everywhere`: all of them): while the window
        lasts, their old access tokens end too, as they name no session (and, everywhere,
        their old refresh tokens, also those never used here)."""
        if self.accepting(now):
            await self._legacy.end_old_tokens(user_id, int(now), refresh_too=everywhere)

    async def access(self, token: str, now: float, ours: TokenInvalid) -> CachedUser:
        """The user behind an old access token, judged on the database."""
        old = self._decode(token, ACCESS, now, ours)
        user = cached(await self._user(old))
        refused = token_refusal(self._as_claims(old, user.id, user.role, ""), user)
        if refused is not None:
            raise refused
        ended = (await self._legacy.cutoffs(old.legacy_id)).access
        if self._ended(old, ended):
            raise TokenInvalid("session_ended", "Session has ended")
        if old.jti not in self._seen:
            if len(self._seen) >= _SEEN_LIMIT:
                self._seen.clear()
            self._seen.add(old.jti)
            log.info("simplejwt token used: access, user %s", user.id)
        return user
