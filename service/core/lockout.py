"""Failed-password lockout ([lockout], OWASP): counters per submitted identifier, per account,
per known device (device cookies) and per account for re-authentication."""

from __future__ import annotations

from service.config import LockoutSettings
from service.core.limits import device_key, identifier_key
from service.errors import LoginLocked, RateLimited
from service.store.counters import LimitCounters


def login_counters(identifier: str, user_id: int | None, device: str | None) -> list[str]:
    """The failure counters a login attempt spends, in order. A known device: its own.
    Anyone else: the submitted identifier's (folded, whether or not an account has it),
    then the account's, which its username and email share."""
    if device:
        return [device_key(device)]
    return [identifier_key(identifier)] + ([f"user:{user_id}"] if user_id is not None else [])


class Lockout:
    """Counts each password attempt before the hash is checked, and gives back the ones that
    succeed; off when [lockout] enabled is false."""

    def __init__(self, settings: LockoutSettings, counters: LimitCounters) -> None:
        self._s = settings
        self._counters = counters

    async def reserve_login(self, counters: list[str]) -> bool:
        """Count the attempt before the hash is checked, so parallel guesses cannot all pass
        under the limit. Past max_failures on the first counter: 429. Past it on the account's
        only (its other identifier was guessed at): True, the verdict is withheld. The attempt
        is still hashed and answered 401 whatever the password, exactly as for an identifier
        with no account: a lock on a username says nothing about which email shares its
        account, and guessing through both never doubles the account's budget."""
        if not self._s.enabled:
            return False
        counts = await self._counters.reserve_attempts(counters, self._s.window,
                                                       self._s.max_failures)
        if counts[0][0] > self._s.max_failures:
            raise LoginLocked(counts[0][1])
        return any(count > self._s.max_failures for count, _ in counts)

    async def login_succeeded(self, counters: list[str], *, known_device: bool) -> None:
        """A known device starts again from nothing; anyone else gets this attempt back."""
        if not self._s.enabled:
            return
        if known_device:
            await self._counters.clear_failures(counters[0])
        else:
            await self._counters.give_back_attempts(counters)

    async def reserve_reauth(self, user_id: int) -> None:
        """Count a re-authentication attempt against the account; past max_failures: 429."""
        if not self._s.enabled:
            return
        ((attempts, left),) = await self._counters.reserve_attempts(
            [_reauth(user_id)], self._s.window, self._s.max_failures)
        if attempts > self._s.max_failures:
            raise RateLimited(left)

    async def reauth_succeeded(self, user_id: int) -> None:
        """The right password was no failure: un-count it."""
        if self._s.enabled:
            await self._counters.give_back_attempts([_reauth(user_id)])


def _reauth(user_id: int) -> str:
    return f"reauth:{user_id}"
