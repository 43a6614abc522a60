"""Second factors on their owner's behalf: a TOTP authenticator (enrol, confirm, turn off),
recovery codes (made at the first enrolment, shown once, single use, regenerable), the
re-authentication that step-up asks for (reauth/), and the admin's reset.

Every change to a factor is mailed to the user as a security alert, with its "this wasn't
me" link. Secrets leave this module only sealed (mfa_crypto.py), and are never logged.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service.config import MfaSettings
from service.core import totp
from service.core.accounts import AccountService
from service.core.alerts import Alerts, alert_time
from service.core.authentication import Caller
from service.core.cached_users import cached
from service.core.limits import RateLimiter, client_key
from service.core.lockout import Lockout
from service.core.mfa_crypto import MfaKey, new_recovery_codes
from service.core.passkeys import Assertions, reauth_purpose
from service.core.passwords import usable
from service.core.sessions import Client, SessionService
from service.core.step_up import StepUp
from service.errors import NotFound, PasskeyRefused, ValidationFailed
from service.store.cache import CachedUser
from service.store.mfa import Factors, MfaStore
from service.store.users import UserStore

log = logging.getLogger("authsvc.mfa")

TOTP = "totp"
RECOVERY_CODE = "recovery_code"
WEBAUTHN = "webauthn"
METHODS = (WEBAUTHN, TOTP, RECOVERY_CODE)
# RFC 8176 names a one-time password "otp"; a recovery code has no registered name.
AMR = {TOTP: "otp", RECOVERY_CODE: "recovery_code", "password": "pwd", WEBAUTHN: "webauthn"}
WRONG_CODE = "The code is wrong, or was already used."
NO_ENROLMENT = "No authenticator app is being set up: start the set-up again."
NO_FACTOR = "Turn on a second factor first: recovery codes back one up."
# An enrolment waits this long for its first code (seconds).
ENROLMENT_TTL = 600
ROLE_NEEDS_FACTOR = ("Your role requires two-factor sign-in: set up a new authenticator app "
                     "instead of turning it off.")


@dataclass(frozen=True)
class Proof:
    """A second factor accepted: which (as `amr` names it), and the recovery code spent."""

    method: str
    amr: str
    code_id: int | None = None


@dataclass(frozen=True)
class Status:
    factors: Factors
    confirmed_at: dt.datetime | None
    pending: bool
    enrolment_required: bool
    has_password: bool


@dataclass(frozen=True)
class Enrolment:
    secret: str
    uri: str
    qr_svg: str


@dataclass(frozen=True)
class Confirmed:
    recovery_codes: list[str]  # the first factor's new codes; none when replacing one
    access: str


@dataclass(frozen=True)
class ReauthInput:
    method: str  # password | totp | recovery_code | webauthn
    secret: str  # the password or the code ("" for a passkey)
    credential: dict[str, Any] | None = None  # a passkey's assertion


class MfaService:
    def __init__(self, settings: MfaSettings, users: UserStore, store: MfaStore, key: MfaKey,
                 sessions: SessionService, accounts: AccountService, step_up: StepUp,
                 alerts: Alerts, lockout: Lockout, limiter: RateLimiter,
                 assertions: Assertions, clock: Callable[[], float] = time.time) -> None:
        self._s = settings
        self._assertions = assertions
        self._users = users
        self._store = store
        self._key = key
        self._sessions = sessions
        self._accounts = accounts
        self._step_up = step_up
        self._alerts = alerts
        self._lockout = lockout
        self._limiter = limiter
        self._clock = clock

    async def factors(self, user_id: int) -> Factors:
        return await self._store.factors(user_id)

    async def status(self, caller: Caller) -> Status:
        factors = await self._store.factors(caller.user.id)
        row = await self._store.totp(caller.user.id)
        user = await self._users.by_id(caller.user.id)
        required = caller.user.role in self._s.require_for_roles and not factors.any
        return Status(factors, row.confirmed_at if row and row.secret else None,
                      bool(row and row.pending_secret), required,
                      user is not None and usable(user.password_hash))

    # -- the authenticator -----------------------------------------------------------------
    async def enrol(self, caller: Caller) -> Enrolment:
        """A new secret waiting for its first code; the authenticator in use (if any) stays
        until that code confirms the new one."""
        await self._step_up.require_recent(caller)
        secret = totp.new_secret()
        await self._store.set_pending(caller.user.id, self._key.seal(caller.user.id, secret),
                                      dt.datetime.fromtimestamp(self._clock(), dt.UTC))
        uri = totp.provisioning_uri(secret, caller.user.username, self._s.issuer)
        return Enrolment(secret, uri, totp.qr_svg(uri))

    async def confirm(self, caller: Caller, code: str, client: Client) -> Confirmed:
        """The first code from the new authenticator makes it the one in use; the first
        factor of an account also gets its recovery codes. The session counts as signed in
        with it now. Guarded like reauth/ (a recent sign-in, each code counted), and an
        enrolment waits ENROLMENT_TTL at most: a right guess would make the session recent."""
        await self._step_up.require_recent(caller)
        user_id = caller.user.id
        now = self._clock()
        row = await self._store.totp(user_id)
        pending = row.pending_secret if row and _fresh(row.pending_at, now) else None
        secret = self._key.open(user_id, pending) if pending else None
        if row is None or pending is None or secret is None:
            raise ValidationFailed.on("non_field_errors", NO_ENROLMENT)
        await self._limiter.check("login", client_key(client.ip))
        await self._lockout.reserve_reauth(user_id)
        step = totp.matching_step(secret, code, now)
        if step is None:
            raise ValidationFailed.on("code", WRONG_CODE)
        await self._lockout.reauth_succeeded(user_id)
        # One transaction with the user's row locked: whether this is the first factor (and
        # gets the codes) is judged where the codes are written, and the session's new token
        # is minted inside it, so a Redis that fails rolls the factor back: once it is on, its
        # codes must have reached the user.
        async with self._store.locked(user_id):
            before = await self._store.factors(user_id)
            codes = new_recovery_codes() if not before.any else []
            hashes = [self._key.code_hash(user_id, c) for c in codes]
            if not await self._store.confirm_pending(user_id, pending, step, hashes):
                raise ValidationFailed.on("non_field_errors", NO_ENROLMENT)
            access, _ = await self._sessions.regrant(
                caller, AMR[TOTP], Factors(True, before.codes_left + len(codes),
                                           before.passkeys), renew=False)
        log.info("user %s: authenticator app %s", user_id,
                 "turned on" if codes else "replaced")
        await self._alert(caller.user, "mfa_enabled" if codes else "mfa_changed")
        return Confirmed(codes, access)

    async def disable(self, caller: Caller) -> None:
        """The authenticator and the recovery codes go: the account signs in with its
        password alone again."""
        await self._step_up.require(caller)
        async with self._store.locked(caller.user.id):  # the role's rule holds under races
            passkeys = (await self._store.factors(caller.user.id)).passkeys
            if caller.user.role in self._s.require_for_roles and not passkeys:
                raise ValidationFailed.on("non_field_errors", ROLE_NEEDS_FACTOR)
            removed = await self._store.remove_totp(caller.user.id)
        if removed:
            log.info("user %s: authenticator app turned off", caller.user.id)
            await self._alert(caller.user, "totp_removed" if passkeys else "mfa_disabled")

    async def regenerate_codes(self, caller: Caller) -> list[str]:
        await self._step_up.require(caller)
        codes = new_recovery_codes()
        if not await self._store.replace_codes(
                caller.user.id, [self._key.code_hash(caller.user.id, c) for c in codes]):
            raise ValidationFailed.on("non_field_errors", NO_FACTOR)
        log.info("user %s: recovery codes regenerated", caller.user.id)
        await self._alert(caller.user, "recovery_codes_regenerated")
        return codes

    # -- using a factor --------------------------------------------------------------------
    async def check(self, user_id: int, method: str, code: str,
                    credential: dict[str, Any] | None, purpose: str,
                    ) -> tuple[Proof | None, str | None]:
        """verify(), and for a refused passkey the check it failed."""
        if method == WEBAUTHN:
            try:
                await self._assertions.verify(credential or {}, purpose, user_id=user_id,
                                              require_uv=False)
            except PasskeyRefused as exc:
                return None, exc.reason
            return Proof(WEBAUTHN, AMR[WEBAUTHN]), None
        return await self.verify(user_id, method, code), None

    async def verify(self, user_id: int, method: str, code: str) -> Proof | None:
        """Spend a code of the user's: a TOTP code once (and no older one after it), a
        recovery code once. None for a wrong, replayed or unusable one."""
        if method == TOTP:
            row = await self._store.totp(user_id)
            secret = self._key.open(user_id, row.secret) if row and row.secret else None
            if row is None or row.secret is None or secret is None:
                return None
            step = totp.matching_step(secret, code, self._clock())
            if step is None or not await self._store.spend_step(user_id, row.secret, step):
                return None
            return Proof(TOTP, AMR[TOTP])
        if method == RECOVERY_CODE:
            if not (await self._store.factors(user_id)).any:
                return None  # codes back up a factor; without one they are no way in
            code_id = await self._store.use_code(user_id, self._key.code_hash(user_id, code))
            return None if code_id is None else Proof(RECOVERY_CODE, AMR[RECOVERY_CODE],
                                                       code_id)
        return None

    async def give_back(self, proof: Proof) -> None:
        """What a proof spent, back: the sign-in it was for did not happen."""
        if proof.code_id is not None:
            await self._store.unuse_code(proof.code_id)

    async def used(self, user: CachedUser, proof: Proof, client: Client) -> None:
        """A recovery code was spent: the owner hears of it (the device may be lost)."""
        if proof.method == RECOVERY_CODE:
            left = (await self._store.factors(user.id)).codes_left
            log.info("user %s: recovery code used (%s left)", user.id, left)
            await self._alerts.send(user, "recovery_code_used",
                                    f"When: {alert_time(self._clock())}. From: {client.ip}. "
                                    f"Recovery codes left: {left}.")

    async def reauthenticate(self, caller: Caller, data: ReauthInput,
                             client: Client) -> tuple[str, int]:
        """Step-up: the password or a second factor again, guarded like a login (wrong
        ones counted against the account, then 429); the session's auth_time renewed."""
        if data.method == "password":
            async with self._accounts.reauthenticated(caller, data.secret, client,
                                                      step_up=False):
                pass
            return await self._sessions.regrant(caller, AMR["password"])
        await self._limiter.check("login", client_key(client.ip))
        await self._lockout.reserve_reauth(caller.user.id)
        proof, refused = await self.check(caller.user.id, data.method, data.secret,
                                          data.credential, reauth_purpose(caller.user.id))
        if proof is None and data.method == WEBAUTHN:
            raise ValidationFailed.on("credential", f"The passkey was refused ({refused}).")
        if proof is None:
            raise ValidationFailed.on("code", WRONG_CODE)
        try:
            renewed = await self._sessions.regrant(caller, proof.amr)
        except BaseException:
            await self.give_back(proof)  # the session was not renewed: the code is not spent
            raise
        await self._lockout.reauth_succeeded(caller.user.id)
        await self.used(caller.user, proof, client)
        return renewed

    # -- the admin's -----------------------------------------------------------------------
    async def admin_reset(self, actor: Caller, user_id: int) -> None:
        """Every factor of the user gone (a lost device, no codes left): logged as a security
        event, mailed to the user. It weakens another account, so it wants a recent sign-in
        from every admin, with a factor or not (admin writes carry no password)."""
        await self._step_up.require_recent(actor)
        user = await self._users.by_id(user_id)
        if user is None:
            raise NotFound()
        had = await self._store.remove_all(user_id)
        log.warning("security: admin %s reset the second factor of user %s (%s)",
                    actor.user.id, user_id, "had one" if had else "had none")
        if had:
            await self._alert(cached(user), "mfa_reset")

    async def methods_of(self, user_ids: list[int]) -> dict[int, list[str]]:
        return await self._store.methods_of(user_ids)

    async def _alert(self, user: CachedUser, kind: str) -> None:
        await self._alerts.send(user, kind, f"When: {alert_time(self._clock())}.")


def _fresh(started: dt.datetime | None, now: float) -> bool:
    """An enrolment started at `started` still waits for its first code."""
    if started is None:
        return False
    if started.tzinfo is None:  # SQLite hands datetimes back naive (they are UTC)
        started = started.replace(tzinfo=dt.UTC)
    return now - started.timestamp() <= ENROLMENT_TTL
