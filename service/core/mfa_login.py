"""The second step of a sign-in (login/mfa/): a code for the sign-in login/ left waiting.

Guarded like the password step, and sharing its budgets: each attempt is counted against
the client IP's login rate and the same lockout counters before the code is judged (a code
guessed wrong stays counted, like a wrong password), one attempt at a time per pending
sign-in and at most [mfa] max_attempts of them; then the sign-in must start again from the
password. A right code gives back this attempt and the password step's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service.config import MfaSettings
from service.core.cached_users import cached
from service.core.limits import RateLimiter, client_key
from service.core.lockout import Lockout
from service.core.mfa import MfaService
from service.core.passkeys import mfa_purpose
from service.core.sessions import Client, SessionService, SignIn
from service.core.tokens import Grant
from service.errors import MfaCodeInvalid, MfaTokenInvalid, RateLimited
from service.store.mfa_logins import PendingLogin, PendingLogins
from service.store.users import UserStore


@dataclass(frozen=True)
class MfaLoginInput:
    token: str
    method: str  # totp | recovery_code | webauthn
    code: str    # "" for a passkey
    credential: dict[str, Any] | None = None  # a passkey's assertion (webauthn)


class MfaLogin:
    def __init__(self, settings: MfaSettings, users: UserStore, pending: PendingLogins,
                 mfa: MfaService, sessions: SessionService, lockout: Lockout,
                 limiter: RateLimiter, clock: Callable[[], float] = time.time) -> None:
        self._s = settings
        self._users = users
        self._pending = pending
        self._mfa = mfa
        self._sessions = sessions
        self._lockout = lockout
        self._limiter = limiter
        self._clock = clock

    async def complete(self, data: MfaLoginInput, client: Client) -> SignIn:
        await self._limiter.check("login", client_key(client.ip))
        attempt = await self._pending.begin_attempt(data.token, self._s.max_attempts,
                                                    self._clock())
        if attempt.status == "busy":  # another attempt with this sign-in is being judged
            raise RateLimited(1)
        if attempt.login is None:
            raise MfaTokenInvalid()
        try:
            return await self._judge(data, attempt.login, client)
        except BaseException:
            await self._pending.failed(data.token)  # nothing once it is used up
            raise

    async def _judge(self, data: MfaLoginInput, login: PendingLogin, client: Client) -> SignIn:
        counters = login.counters
        await self._limiter.check("login", counters[0])
        withheld = await self._lockout.reserve_login(counters)
        user = await self._users.by_id(login.user_id)
        if user is None or not user.is_active or user.token_version != login.token_version:
            # Deactivated, or the password changed, since the password step.
            await self._pending.finish(data.token)
            raise MfaTokenInvalid()
        proof, refused = (None, None) if withheld else await self._mfa.check(
            user.id, data.method, data.code, data.credential, mfa_purpose(data.token))
        if proof is None:
            raise MfaCodeInvalid(refused)
        try:
            # Used up before the session starts: a session nobody received is worse than a
            # sign-in to start again.
            await self._pending.finish(data.token)
            known = bool(login.device)
            for _ in range(1 if known else 2):  # this attempt, and the password step's
                await self._lockout.login_succeeded(counters, known_device=known)
            factors = await self._mfa.factors(user.id)
            row = cached(user)
            signed_in = await self._sessions.signed_in(
                row, client, login.device or None, login.device_token or None,
                Grant(("pwd", proof.amr), int(self._clock())), factors)
        except BaseException:
            await self._mfa.give_back(proof)  # no session: the recovery code is not spent
            raise
        await self._mfa.used(row, proof, client)
        return signed_in
