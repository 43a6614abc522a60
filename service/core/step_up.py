"""Step-up: sensitive operations (password change, account deletion, changing a factor,
recovery codes, admin writes) want a recent sign-in or re-authentication ([mfa]
step_up_max_age) from accounts with a second factor, so a stolen session alone cannot turn
the factor off. Accounts without one prove themselves with the password the request carries."""

from __future__ import annotations

import time
from collections.abc import Callable

from service.config import MfaSettings
from service.core.authentication import Caller
from service.core.passwords import usable
from service.errors import StepUpRequired
from service.store.mfa import Factors, MfaStore
from service.store.users import UserStore


def reauth_methods(factors: Factors, has_password: bool = True) -> list[str]:
    """What reauth/ accepts from this account."""
    return [*(["password"] if has_password else []), *factors.methods()]


class StepUp:
    def __init__(self, settings: MfaSettings, store: MfaStore, users: UserStore,
                 clock: Callable[[], float] = time.time) -> None:
        self._max_age = settings.step_up_max_age
        self._store = store
        self._users = users
        self._clock = clock

    def recent(self, caller: Caller) -> bool:
        return self._clock() - caller.grant.auth_time <= self._max_age

    async def require(self, caller: Caller) -> None:
        """403 step_up_required unless the caller signed in recently or has no factor."""
        if self.recent(caller):
            return
        factors = await self._store.factors(caller.user.id)
        if factors.any:
            raise StepUpRequired(await self._methods(caller, factors))

    async def require_recent(self, caller: Caller) -> None:
        """403 step_up_required unless the caller signed in recently, factor or not (adding a
        factor: a stolen session must not lock the owner out with one of its own)."""
        if not self.recent(caller):
            factors = await self._store.factors(caller.user.id)
            raise StepUpRequired(await self._methods(caller, factors))

    async def _methods(self, caller: Caller, factors: Factors) -> list[str]:
        row = await self._users.by_id(caller.user.id)
        return reauth_methods(factors, row is None or usable(row.password_hash))
