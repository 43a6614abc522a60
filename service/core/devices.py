"""Device tokens for OWASP's device-cookie lockout scheme: proof that this client has signed in
to this account before. Stateless (HMAC-signed), bound to one user, with an expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

# user id . nonce . expiry . signature, in ASCII only: anything else is not a token we issued
# (and non-ASCII text would make hmac.compare_digest raise instead of answer).
_TOKEN = re.compile(r"([0-9]{1,18})\.([A-Za-z0-9_-]{1,64})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})",
                    re.ASCII)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class DeviceTokens:
    def __init__(self, secret: str, ttl: int) -> None:
        # A key of its own, derived from the JWT secret: a device token is never a JWT.
        self._key = hashlib.sha256(b"authsvc device tokens\x00" + secret.encode()).digest()
        self._ttl = ttl

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, user_id: int, now: float) -> str:
        payload = f"{user_id}.{secrets.token_urlsafe(12)}.{int(now) + self._ttl}"
        return f"{payload}.{self._sign(payload)}"

    def verify(self, token: str | None, user_id: int, now: float) -> str | None:
        """The device's id (its nonce) when `token` is this user's and unexpired, else None:
        never an error, whatever the text (it comes from a body field or a cookie)."""
        match = _TOKEN.fullmatch(token) if token and len(token) <= 200 else None
        if match is None:
            return None
        uid, nonce, expiry, signature = match.groups()
        if not hmac.compare_digest(self._sign(f"{uid}.{nonce}.{expiry}"), signature):
            return None
        if uid != str(user_id) or int(expiry) <= now:
            return None
        return nonce
