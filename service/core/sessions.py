"""Sessions and their tokens: login, refresh, logout, listing and ending sessions. Stores
passed in; each session is a Redis record its two tokens name (sid)."""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from service.config import Settings
from service.core.alerts import Alerts, alert_time
from service.core.authentication import Caller, session_ended
from service.core.cached_users import (
    CachedUsers,
    cached,
    check_token_user,
    password_changed,
    token_refusal,
    user_id_of,
)
from service.core.devices import DeviceTokens
from service.core.limits import RateLimiter, client_key, device_key, identifier_key
from service.core.lockout import Lockout, login_counters
from service.core.migration import OldRefresh, OldTokens
from service.core.passwords import PasswordHasher
from service.core.tokens import ENROLMENT_SCOPE, REFRESH, Claims, Grant, TokenCodec, TokenPair
from service.errors import (
    EmailNotVerified,
    InvalidCredentials,
    NotFound,
    TokenInvalid,
    ValidationFailed,
)
from service.store.cache import CachedUser, UserCache
from service.store.counters import LimitCounters
from service.store.mfa import Factors, MfaStore
from service.store.mfa_logins import PendingLogin, PendingLogins
from service.store.sessions import RefreshOutcome, SessionInfo, SessionStore
from service.store.users import TokenState, User, UserStore

log = logging.getLogger("authsvc.sessions")


@dataclass(frozen=True)
class LoginInput:
    """A parsed login: username or email, password, and the device token if one was sent."""

    identifier: str
    password: str
    device_token: str | None


@dataclass(frozen=True)
class Client:
    """Who is calling, as far as HTTP tells: recorded with the session it starts."""

    ip: str
    user_agent: str


@dataclass(frozen=True)
class MfaRequired:
    """A right password of an account with a second factor: login/mfa/ finishes the sign-in
    with `token` and a code of one of `methods`."""

    token: str
    methods: list[str]


@dataclass(frozen=True)
class SignIn:
    """What a login or a registration hands back: the user, the new session's tokens (none
    while a new account's email awaits verification, or a second factor is due: `mfa`) and,
    for a login, the device token."""

    user: CachedUser | User
    tokens: TokenPair | None
    device_token: str | None = None
    mfa: MfaRequired | None = None


@dataclass(frozen=True)
class Refreshed:
    """A refresh's answer: a new access token, and its successor refresh token when rotating."""

    access: str
    refresh: str | None


class SessionService:
    """Starts, refreshes and ends sessions; the lockout and rate limits guard logins."""

    def __init__(self, settings: Settings, users: UserStore, cache: UserCache,
                 counters: LimitCounters, session_store: SessionStore, hasher: PasswordHasher,
                 codec: TokenCodec, devices: DeviceTokens, limiter: RateLimiter, alerts: Alerts,
                 rows: CachedUsers, old_tokens: OldTokens, mfa: MfaStore,
                 pending: PendingLogins, clock: Callable[[], float] = time.time) -> None:
        self._s = settings
        self._users = users
        self._cache = cache
        self._session_store = session_store
        self._hasher = hasher
        self._codec = codec
        self._devices = devices
        self._limiter = limiter
        self._alerts = alerts
        self._clock = clock
        self._lockout = Lockout(settings.lockout, counters)
        self._rows = rows
        self._old = old_tokens
        self._mfa = mfa
        self._pending = pending

    # -- start ----------------------------------------------------------------------------
    async def login(self, data: LoginInput, client: Client) -> SignIn:
        """Check the password, guarded by rate limits and the lockout; start a session."""
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
        counters = login_counters(data.identifier, user.id if user else None, device)
        withheld = await self._lockout.reserve_login(counters)
        # Unknown users cost the same hashing work as a wrong password.
        result = await self._hasher.verify(user.password_hash if user else None, data.password)
        if user is None or not result.valid or not user.is_active or withheld:
            raise InvalidCredentials()
        # Only now, for someone who knows the password: whether a second factor is due.
        factors = await self._mfa.factors(user.id)
        if not factors.any or (self._s.auth.require_email_verification
                               and not user.email_verified):
            await self._lockout.login_succeeded(counters, known_device=bool(device))
        # Said only to someone who knows the password: it reveals nothing to a guesser.
        if self._s.auth.require_email_verification and not user.email_verified:
            raise EmailNotVerified()
        if result.new_hash:
            await self._users.upgrade_hash(user.id, user.password_hash, result.new_hash)
        if factors.any:
            # The attempt stays counted until the second step succeeds (core/mfa_login.py):
            # knowing the password buys no extra guesses at the code.
            token = secrets.token_urlsafe(32)
            await self._pending.put(token, PendingLogin(
                user.id, user.token_version, counters, device or "",
                data.device_token if device and data.device_token else "", client.ip,
                client.user_agent))
            return SignIn(user, None, None, MfaRequired(token, factors.methods()))
        return await self.signed_in(cached(user), client, device, data.device_token,
                                    Grant(("pwd",), int(now)), factors)

    def known_device(self, device_token: str | None, user_id: int) -> str | None:
        """The device a device token proves, if it is this user's (login/ without a
        password: a passkey)."""
        if not device_token:
            return None
        return self._devices.verify(device_token, user_id, self._clock())

    async def signed_in(self, row: CachedUser, client: Client, device: str | None,
                        device_token: str | None, grant: Grant, factors: Factors) -> SignIn:
        """Every factor checked: alert a new device, start the session, hand out the tokens
        and the device token (the known device's own, else a new one)."""
        now = self._clock()
        if not device and self._alerts.enabled:
            await self._alerts.send(row, "new_device",
                                    f"When: {alert_time(now)}. From: {client.ip}, "
                                    f"{client.user_agent or 'unknown browser'}.")
        await self._cache.fill(row)
        device_token = (device_token if device and device_token
                        else self._devices.issue(row.id, now))
        return SignIn(row, await self.start(row, client, grant, factors), device_token)

    def _scope(self, role: str, factors: Factors) -> str:
        """A role that requires a second factor, without one: tokens for the enrolment only."""
        if role in self._s.mfa.require_for_roles and not factors.any:
            return ENROLMENT_SCOPE
        return ""

    async def grant_for(self, user_id: int, role: str, amr: tuple[str, ...],
                        auth_time: int, factors: Factors | None = None) -> Grant:
        """The grant tokens are minted under, its scope judged now (the factors are read
        only for a role that requires one)."""
        if role in self._s.mfa.require_for_roles and factors is None:
            factors = await self._mfa.factors(user_id)
        return Grant(amr, auth_time, self._scope(role, factors or Factors(False, 0)))

    async def start(self, user: CachedUser, client: Client, grant: Grant | None = None,
                    factors: Factors | None = None) -> TokenPair:
        """A new session of `user` and its first token pair (no grant: a password sign-in
        now)."""
        now = self._clock()
        sid = uuid.uuid4().hex
        grant = await self.grant_for(user.id, user.role, grant.amr if grant else ("pwd",),
                                     grant.auth_time if grant else int(now), factors)
        pair = self._codec.issue_pair(sub=str(user.id), role=user.role, ver=user.token_version,
                                      sid=sid, now=now, grant=grant)
        exp = pair.refresh_claims.exp
        await self._session_store.start(
            sid=sid, user_id=user.id, refresh_jti=pair.refresh_claims.jti, now=now, exp=exp,
            ttl=self._ttl(exp, now), user_agent=client.user_agent, ip=client.ip,
            amr=grant.amr, auth_time=grant.auth_time)
        return pair

    async def regrant(self, caller: Caller, method: str, factors: Factors | None = None, *,
                      renew: bool = True) -> tuple[str, int]:
        """The caller's session proved itself again (reauth/): its grant now adds `method`
        at this moment, for every later token of the session. A new access token under it,
        and the auth_time. `renew=False` (a factor just added: it proves only that the
        caller holds what it was just given) adds the method and lifts an enrolment scope
        but keeps the auth_time. `factors`: the account's as they now are, for the scope."""
        now = self._clock()
        user = caller.user
        amr = tuple(dict.fromkeys((*caller.grant.amr, method)))
        at = int(now) if renew else caller.grant.auth_time
        if not caller.sid:  # an old simplejwt token: no session to carry the grant
            raise TokenInvalid("session_ended", "Sign in again to confirm it is you"
                               ).for_bearer()
        session_end = await self._session_store.elevate(user.id, caller.sid, amr, at)
        if session_end is None:
            raise (await session_ended(self._session_store, caller.sid)).for_bearer()
        grant = await self.grant_for(user.id, user.role, amr, at, factors)
        access, _ = self._codec.issue_access(sub=str(user.id), role=user.role,
                                             ver=user.token_version, sid=caller.sid, now=now,
                                             session_end=session_end, grant=grant)
        return access, at

    async def renew(self, user: CachedUser, caller: Caller) -> TokenPair:
        """A fresh token pair and lifetime for the caller's session (after a password
        change); its grant goes on."""
        now = self._clock()
        sid = caller.sid
        grant = await self.grant_for(user.id, user.role, caller.grant.amr,
                                     caller.grant.auth_time)
        pair = self._codec.issue_pair(sub=str(user.id), role=user.role, ver=user.token_version,
                                      sid=sid, now=now, grant=grant)
        exp = pair.refresh_claims.exp
        await self._session_store.set_current(user.id, sid, pair.refresh_claims.jti, now, exp,
                                              self._ttl(exp, now))
        return pair

    def _ttl(self, exp: int, now: float) -> int:
        """Seconds a token expiring at `exp` is still accepted (leeway included)."""
        return max(1, int(exp + self._s.jwt.leeway - now) + 1)

    # -- refresh and end ------------------------------------------------------------------
    async def _refresh_claims(self, token: str, now: float) -> tuple[Claims, OldRefresh | None]:
        """A refresh token's claims: authsvc's, or, while the cut-over window lasts, an old
        simplejwt token's as authsvc's (core/migration.py)."""
        try:
            return self._codec.decode(token, REFRESH, now), None
        except TokenInvalid as exc:
            old = await self._old.refresh(token, now, exc)
            return old.claims, old

    async def refresh(self, token: str,
                      client: Callable[[], Client] | None = None) -> Refreshed:
        """A new access token for a refresh token (and its successor when rotating);
        `client` tells who asks, for a session an old simplejwt token starts."""
        now = self._clock()
        claims, old = await self._refresh_claims(token, now)
        user_id = user_id_of(claims)
        state = await self._token_state(user_id, claims)
        ver, role = state.token_version, state.role
        if old is not None and old.record is None:
            who = client() if client else Client("", "")
            await self._old.start_session(old, now, user_agent=who.user_agent, ip=who.ip)
        elif old is not None:
            log.info("simplejwt token used: refresh, user %s, session %s", user_id, claims.sid)
        if self._s.jwt.rotate_refresh_tokens:
            outcome = await self._session_store.rotate(
                user_id, claims.sid, claims.jti, ver, role, now,
                grace=self._s.jwt.rotation_grace, new_refresh_jti=uuid.uuid4().hex,
                new_access_jti=uuid.uuid4().hex, blacklist_ttl=self._ttl(claims.exp, now))
        else:
            outcome = await self._session_store.use_refresh(user_id, claims.sid, claims.jti,
                                                            ver, role, now)
        if outcome.status == "reused":  # the session ended: so do its user's old access tokens
            await self._old.end_old_tokens(user_id, now, everywhere=False)
        if outcome.status not in ("ok", "rotated", "grace"):
            alert = outcome.status == "reused" and self._alerts.enabled
            raise await self._refused(outcome, claims,
                                      await self._rows.read(user_id, None) if alert else None)
        grant = await self.grant_for(user_id, role, outcome.amr or ("pwd",), outcome.auth_time)
        if outcome.status == "ok":
            # Never past the session's end (the refresh token's exp): issue 9.8.
            access, _ = self._codec.issue_access(sub=claims.sub, role=role, ver=ver,
                                                 sid=claims.sid, now=now,
                                                 session_end=claims.exp, grant=grant)
            return Refreshed(access, None)
        # The successor keeps the original expiry (refreshing never extends a session), and
        # is minted from the claims stored at rotation, so a racing tab gets the same pair.
        pair = self._codec.issue_pair(
            sub=claims.sub, role=role, ver=ver, sid=claims.sid,
            now=outcome.rotated_at, refresh_exp=claims.exp, refresh_jti=outcome.refresh_jti,
            access_jti=outcome.access_jti, grant=grant)
        return Refreshed(pair.access, pair.refresh)

    async def _token_state(self, user_id: int, claims: Claims) -> TokenState:
        """The database's word on the token (issue 9.7), never the cache's: a Redis restored
        from an older snapshot, or a failover that lost writes, must not bring back what a
        password change or reset, a deactivation, a role change or a deletion ended. Each
        refusal also heals what Redis brought back."""
        state = await self._users.token_state(user_id)
        if state is None:
            raise await self._rows.missing(user_id)
        refused = token_refusal(claims, state)
        if refused is None:
            return state
        await self._cache.drop_if_older(user_id, state.token_version, state.is_active,
                                        state.role)
        if not state.is_active:
            # Deactivation ended them; a Redis restored from a snapshot brought them back.
            await self._session_store.end_all(user_id)
        raise refused

    async def _refused(self, outcome: RefreshOutcome, claims: Claims,
                       user: CachedUser | None) -> TokenInvalid:
        if outcome.status == "reused":
            log.warning("refresh token reuse for user %s: session %s ended (theft suspected)",
                        claims.sub, claims.sid)
            if user is not None:
                await self._alerts.send(user, "token_reuse",
                                        f"When: {alert_time(self._clock())}.")
            return TokenInvalid("token_reused", "Token was already used: session ended")
        if outcome.status == "revoked":
            return TokenInvalid("token_revoked", "Token is blacklisted")
        if outcome.status == "stale":
            return password_changed()
        return await session_ended(self._session_store, claims.sid)

    async def logout(self, token: str) -> None:
        """End the token's session and blacklist it; 400 (on `refresh_token`) for anything
        that cannot be revoked now."""
        now = self._clock()
        try:
            claims, old = await self._refresh_claims(token, now)
            user_id = user_id_of(claims)
            if old is not None:
                await self._logout_old(old, now)
                if old.record is None:  # never used here: no session to end
                    return
            outcome = await self._session_store.logout(
                user_id, claims.sid, claims.jti, claims.ver, self._ttl(claims.exp, now), now,
                self._s.jwt.rotation_grace)
            user = await self._rows.read(user_id, outcome.user)
            check_token_user(claims, user)
            if outcome.status in ("ok", "reused"):  # a session ended here
                await self._old.end_old_tokens(user_id, now, everywhere=False)
            if outcome.status != "ok":
                raise await self._refused(outcome, claims, user)
        except TokenInvalid as exc:
            raise ValidationFailed.on("refresh_token", exc.detail) from exc

    async def _logout_old(self, old: OldRefresh, now: float) -> None:
        """An old refresh token at logout: judged on the database's row (as a refresh is),
        then refused for good in SQL before its session (if any) ends in Redis."""
        check_token_user(old.claims, cached(old.user))
        await self._old.revoke(old, now)

    async def logout_all(self, caller: Caller) -> int:
        """End every session of the caller (and their old simplejwt access tokens, during
        the cut-over); how many sessions there were."""
        await self._old.end_old_tokens(caller.user.id, self._clock(), everywhere=True)
        return await self._session_store.end_all(caller.user.id)

    async def list_sessions(self, caller: Caller) -> list[SessionInfo]:
        """The caller's live sessions, oldest first."""
        return await self._session_store.list(caller.user.id)

    async def end_session(self, caller: Caller, sid: str) -> None:
        """End one of the caller's sessions; anyone else's (or none): 404."""
        if not await self._session_store.end(caller.user.id, sid):
            raise NotFound()
        await self._old.end_old_tokens(caller.user.id, self._clock(), everywhere=False)
