"""Every Redis key the service writes is named here; the stores own what goes in them.

Each key starts with [redis] prefix (default `auth:`) and expires with what it guards; none
is immortal. No secret is part of a key name: tokens and addresses appear only as SHA-256.

    {prefix}user:{id}                hash      cached user row: ver (token version), is_active,
                                               role, username, email, display_name; or a
                                               deleted account's marker, `gone` = "1" only.
                                               TTL = jwt.refresh_ttl (the marker: refresh
                                               lifetime + leeway)                 cache.py
    {prefix}session:{sid}            hash      a session: uid, created, last_used, user_agent,
                                               ip, exp, cur (live refresh jti), prev + rot_at +
                                               acc (the last rotation, for the grace window),
                                               amr + auth_time (how and when it last proved
                                               who it is: sign-in, reauth/).
                                               TTL = until its refresh token expires (+ leeway)
                                                                                  sessions.py
    {prefix}user_sessions:{id}       set       the user's session ids. TTL = refresh lifetime
                                               + leeway, renewed at each login    sessions.py
    {prefix}ended:{sid}              reason    why a session ended, where a later refusal of its
                                               tokens must say more than `session_ended`: only
                                               "token_reused" (a refresh token used twice).
                                               TTL = what the session had left    sessions.py
    {prefix}blacklist:{jti}          "1"       a refresh token revoked by logout or replaced by
                                               rotation. TTL = until the token expires
                                               (+ leeway)                         sessions.py
    {prefix}reset:{sha256(token)}    "{id}:{ver}"  a password-reset token, single use.
                                               TTL = password_reset.ttl           links.py
    {prefix}verify:{sha256(token)}   "{id}"    an email-verification token, single use.
                                               TTL = auth.email_verification_ttl  links.py
    {prefix}notme:{sha256(token)}    "{id}"    a "this wasn't me" link from a security alert,
                                               single use. TTL = alerts.link_ttl  links.py
    {prefix}rl:{scope}:{sha256(key)[:32]}  counter  fixed-window rate limit, scope login,
                                               register or password_reset; key ip:..., id:...
                                               or device:.... TTL = the window    counters.py
    {prefix}lock:{sha256(key)[:32]}  counter   password failures: of a submitted identifier
                                               (id:), an account (user:) or one device
                                               (device:) at login, of an account at
                                               re-authentication (reauth:). TTL = the lockout
                                               window from the first failure      counters.py
    {prefix}hashing:{id}             owner     a password check of this user in flight
                                               (re-authentication). TTL = 60 s, deleted when
                                               the check ends                     counters.py
    {prefix}mfa_login:{sha256(token)}  hash  a sign-in waiting for its second factor
                                               (login/ -> login/mfa/): uid, ver, the failure
                                               counters and device it spends, ip, user agent,
                                               attempts, busy. Single use.
                                               TTL = mfa.login_ttl                mfa_logins.py
    {prefix}webauthn:{sha256(challenge)}  purpose  a WebAuthn challenge handed out, single use:
                                               "reg:{id}:{user handle}", "login", "mfa:{sha256
                                               (mfa_token)}" or "reauth:{id}".
                                               TTL = 300 s               webauthn_challenges.py
    {prefix}mails:{sha256(address)[:32]}  counter  mails anyone can trigger to one address
                                               (reset links, verification resends).
                                               TTL = one hour from the first      counters.py

RQ's own `rq:*` keys (the mail queue, mail.py) carry no prefix: RQ has none.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

# The single-use link families that hold a user id (a reset token also holds a version).
LinkFamily = Literal["verify", "notme"]
# Every family, as a key names it after the prefix.
Family = Literal["user", "session", "user_sessions", "ended", "blacklist", "reset", "verify",
                 "notme", "rl", "lock", "hashing", "mails", "mfa_login", "webauthn"]
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def digest(secret: str) -> str:
    """SHA-256 hex of a token or address: what a key holds instead of the secret itself."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class RedisKeys:
    """The key names under one prefix, one method per family."""

    prefix: str

    def user(self, user_id: int) -> str:
        return f"{self.prefix}user:{user_id}"

    def session(self, sid: str) -> str:
        return f"{self.prefix}session:{sid}"

    def user_sessions(self, user_id: int) -> str:
        return f"{self.prefix}user_sessions:{user_id}"

    def ended(self, sid: str) -> str:
        return f"{self.prefix}ended:{sid}"

    def blacklist(self, jti: str) -> str:
        return f"{self.prefix}blacklist:{jti}"

    def reset(self, token: str) -> str:
        return f"{self.prefix}reset:{digest(token)}"

    def link(self, family: LinkFamily, token: str) -> str:
        return f"{self.prefix}{family}:{digest(token)}"

    def rate(self, scope: str, key: str) -> str:
        return f"{self.prefix}rl:{scope}:{digest(key)[:32]}"

    def lock(self, key: str) -> str:
        return f"{self.prefix}lock:{digest(key)[:32]}"

    def hashing(self, user_id: int) -> str:
        return f"{self.prefix}hashing:{user_id}"

    def mfa_login(self, token: str) -> str:
        return f"{self.prefix}mfa_login:{digest(token)}"

    def webauthn(self, challenge: str) -> str:
        return f"{self.prefix}webauthn:{digest(challenge)}"

    def mails(self, address: str) -> str:
        return f"{self.prefix}mails:{digest(address)[:32]}"

    def every(self, family: Family) -> str:
        """A SCAN pattern that matches every key of `family` under this prefix, and no other."""
        return _GLOB_SPECIAL.sub(r"\\\1", self.prefix) + f"{family}:*"
