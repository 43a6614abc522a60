"""Account deletion, by the user (with their password) or by an admin: a hard delete.

The row goes, so nothing of the account stays to be recovered, its username and email are
free again, and its id is never given out again (AUTOINCREMENT). Every session and token of
the account is refused at once. Whole or not at all across the database and Redis:

1. the cached row becomes the deleted-account marker: from here on every token of the user
   is judged on the database (a Redis that cannot be written fails here: nothing changed);
2. the row is deleted (one statement; if it fails, the account stands and the short-lived
   marker only costs its requests a database read until it expires);
3. every session ends and the marker stays as long as a token could live. A crash before
   this step leaves sessions in Redis, but every token of them is refused: the database
   has no such user any more, and a refused token ends them all (core.cached_users).
"""

from __future__ import annotations

import logging

from service.store.sessions import SessionStore
from service.store.users import UserStore

log = logging.getLogger("authsvc.deletion")

# Step 1's marker: long enough for step 2 (bounded by the database timeout).
PENDING_TTL = 120


class AccountDeletion:
    """Deletes accounts. The caller checks who may: DELETE profile/ inside
    AccountService.reauthenticated (the password, guarded like a login), the admin API by role."""

    def __init__(self, users: UserStore, sessions: SessionStore) -> None:
        self._users = users
        self._sessions = sessions

    async def delete(self, user_id: int) -> None:
        await delete_account(self._users, self._sessions, user_id)


async def delete_account(users: UserStore, sessions: SessionStore, user_id: int) -> None:
    """Remove the account; see the module's docstring for the order. Also `authsvc
    delete-user`, the operator's way (a row deleted by hand in SQL keeps its access tokens
    working on the cached row until they expire)."""
    await sessions.mark_gone(user_id, PENDING_TTL)
    await users.delete(user_id)
    ended = await sessions.purge_user(user_id)
    log.info("account %s deleted: %s sessions ended", user_id, ended)
