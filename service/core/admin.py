"""The admin API's rules: who is an admin, listing users, changing role and active state,
revoking every token of a user, deleting an account. Stores passed in, as in accounts.py."""

from __future__ import annotations

from dataclasses import dataclass

from service.core.cached_users import cached
from service.core.deletion import AccountDeletion
from service.errors import NotFound, PermissionDenied, ValidationFailed
from service.store.cache import CachedUser, UserCache
from service.store.sessions import SessionStore
from service.store.users import User, UserFilter, UserStore

ADMIN = "admin"
SELF_LOCKOUT = "You cannot deactivate yourself or remove your own admin role."
SELF_DELETE = "You cannot delete your own account here: use DELETE profile/ with your password."


@dataclass(frozen=True)
class ListQuery:
    filters: UserFilter
    page: int
    page_size: int


@dataclass(frozen=True)
class UserPatch:
    """A PATCH body: None means "leave as is"."""

    role: str | None
    is_active: bool | None


@dataclass(frozen=True)
class Page:
    count: int
    users: list[User]
    has_next: bool


class AdminService:
    def __init__(self, users: UserStore, cache: UserCache, sessions: SessionStore,
                 deletion: AccountDeletion) -> None:
        self._users = users
        self._cache = cache
        self._sessions = sessions
        self._deletion = deletion

    @staticmethod
    def require_admin(user: CachedUser) -> None:
        """Judged on the current row (cache or database), not the token's claim: a demotion
        takes effect at once."""
        if user.role != ADMIN:
            raise PermissionDenied()

    async def list_users(self, query: ListQuery) -> Page:
        count = await self._users.count_users(query.filters)
        offset = (query.page - 1) * query.page_size
        if query.page > 1 and offset >= count:
            raise NotFound("Invalid page.")  # DRF's answer for a page past the last
        rows = await self._users.list_users(query.filters, offset=offset, limit=query.page_size)
        return Page(count, rows, offset + len(rows) < count)

    async def get_user(self, user_id: int) -> User:
        user = await self._users.by_id(user_id)
        if user is None:
            raise NotFound()
        return user

    async def update_user(self, actor: CachedUser, user: User, patch: UserPatch) -> User:
        """Change role and/or active state; either change refuses every earlier token."""
        role = patch.role if patch.role not in (None, user.role) else None
        active = patch.is_active if patch.is_active not in (None, user.is_active) else None
        # The acting admin keeps access, so there is always someone left to undo a mistake.
        if user.id == actor.id and (active is False or role is not None):
            raise ValidationFailed.on("non_field_errors", SELF_LOCKOUT)
        if role is not None or active is not None:
            await self._cache.forget(user.id)  # fail closed before the database write
        if role is not None:
            await self._users.set_role_and_bump(user.id, role)
        if active is not None:
            await self._users.set_active(user.id, active)
        if role is None and active is None:
            return user
        if active is False:
            await self._sessions.end_all(user.id)
        return await self._publish(user.id)

    async def revoke_sessions(self, user_id: int) -> None:
        """Refuse every token of the user issued so far."""
        user = await self.get_user(user_id)
        await self._cache.forget(user.id)
        await self._users.bump_token_version(user.id)
        await self._sessions.end_all(user.id)
        await self._publish(user.id)

    async def delete_user(self, actor: CachedUser, user_id: int) -> None:
        """Hard-delete another user's account (deletion.py). Not one's own: an admin could
        remove the last admin by mistake, and their own deletion asks for their password."""
        user = await self.get_user(user_id)
        if user.id == actor.id:
            raise ValidationFailed.on("non_field_errors", SELF_DELETE)
        await self._deletion.delete(user.id)

    async def _publish(self, user_id: int) -> User:
        """Overwrite the cached row with the database's, then check that no other admin's
        write landed between our read and our put (else our older row would stand)."""
        row = await self.get_user(user_id)
        for _ in range(3):
            await self._cache.put(cached(row))
            latest = await self.get_user(user_id)
            if latest == row:
                break
            row = latest
        return row
