"""WebAuthn challenges handed out and not yet answered, in Redis under
`webauthn:{sha256(challenge)}` (keys.py): each names what it was for, and is taken once
(GETDEL), whether or not the answer then holds."""

from __future__ import annotations

from service.store.keys import RedisKeys
from service.store.redis_wire import RedisWire, text

CHALLENGE_TTL = 300


class Challenges:
    def __init__(self, redis: RedisWire, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys

    async def put(self, challenge: str, purpose: str) -> None:
        """`challenge` base64url, as the browser's clientDataJSON will carry it back."""
        await self._redis.execute("SET", self._keys.webauthn(challenge), purpose,
                                  "EX", CHALLENGE_TTL)

    async def take(self, challenge: str) -> str | None:
        """What the challenge was handed out for, once; None if unknown, used or expired."""
        purpose = await self._redis.execute("GETDEL", self._keys.webauthn(challenge))
        return None if purpose is None else text(purpose)
