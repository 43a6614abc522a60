"""Device tokens for OWASP's device-cookie lockout scheme: proof that this client has signed in
to this account before. Stateless (HMAC-signed), bound to one user, with an expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


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
        """The device's id (its nonce) when `token` is this user's and unexpired, else None."""
        if not token or len(token) > 200:
            return None
        parts = token.split(".")
        if len(parts) != 4 or not parts[2].isdigit():
            return None
        payload = ".".join(parts[:3])
        if not hmac.compare_digest(self._sign(payload), parts[3]):
            return None
        if parts[0] != str(user_id) or int(parts[2]) <= now:
            return None
        return parts[1]
