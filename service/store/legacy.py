"""What the cut-over from Django keeps in SQL: old refresh tokens by jti (blacklisted on the
old side, or bound to the session their first use started here) and, per imported user, the
moment their old access tokens were ended. Tables in users.py (migration 0004)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from databases import Database
from sqlalchemy.dialects import postgresql, sqlite

from service.store.users import legacy_tokens, legacy_users, users


@dataclass(frozen=True)
class OldToken:
    """An old refresh token's record: `sid` once used here, `revoked` once logged out (on
    either side)."""

    jti: str
    sid: str | None
    revoked: bool


@dataclass(frozen=True)
class Cutoffs:
    """Unix times before which an imported user's old tokens are refused (None: never)."""

    access: int | None   # old access tokens (a logout, logout everywhere)
    refresh: int | None  # old refresh tokens (logout everywhere)


def insert_ignoring_duplicates(table: sa.Table, is_sqlite: bool) -> Any:
    """INSERT … ON CONFLICT DO NOTHING, in the database's own dialect."""
    return (sqlite.insert(table) if is_sqlite else postgresql.insert(table)
            ).on_conflict_do_nothing()


class LegacyStore:
    def __init__(self, database: Database) -> None:
        self._db = database
        self._sqlite = database.url.dialect == "sqlite"

    async def token(self, jti: str) -> OldToken | None:
        row = await self._db.fetch_one(
            sa.select(legacy_tokens.c.sid, legacy_tokens.c.revoked)
            .where(legacy_tokens.c.jti == jti))
        if row is None:
            return None
        m = row._mapping
        return OldToken(jti, m["sid"], bool(m["revoked"]))

    async def bind(self, jti: str, legacy_id: int, sid: str, expires_at: int) -> OldToken:
        """Record that the token's first use started session `sid`; a record made first by
        a concurrent use (or an import) stands. Returns the record as it now is."""
        await self._db.execute(insert_ignoring_duplicates(legacy_tokens, self._sqlite).values(
            jti=jti, legacy_id=legacy_id, sid=sid, revoked=False, expires_at=expires_at))
        found = await self.token(jti)
        assert found is not None
        return found

    async def revoke(self, jti: str, legacy_id: int, expires_at: int) -> bool:
        """Mark the token logged out, for good; False if it already was."""
        current = await self.token(jti)
        if current is not None and current.revoked:
            return False
        await self._db.execute(insert_ignoring_duplicates(legacy_tokens, self._sqlite).values(
            jti=jti, legacy_id=legacy_id, sid=None, revoked=True, expires_at=expires_at))
        await self._db.execute(legacy_tokens.update().where(
            legacy_tokens.c.jti == jti).values(revoked=True))
        return True

    async def end_old_tokens(self, user_id: int, at: int, *, refresh_too: bool) -> None:
        """Refuse the user's old access tokens issued before `at` (and, with `refresh_too`,
        their old refresh tokens); a no-op for a user that was not imported."""
        legacy_id = sa.select(users.c.legacy_id).where(users.c.id == user_id).scalar_subquery()
        values = {"tokens_ended_at": at, **({"sessions_ended_at": at} if refresh_too else {})}
        await self._db.execute(legacy_users.update().where(
            legacy_users.c.legacy_id == legacy_id).values(**values))

    async def cutoffs(self, legacy_id: int) -> Cutoffs:
        """When the user's old tokens were ended (None: never)."""
        row = await self._db.fetch_one(
            sa.select(legacy_users.c.tokens_ended_at, legacy_users.c.sessions_ended_at)
            .where(legacy_users.c.legacy_id == legacy_id))
        if row is None:
            return Cutoffs(None, None)
        m = row._mapping
        return Cutoffs(*(None if m[c] is None else int(m[c])
                         for c in ("tokens_ended_at", "sessions_ended_at")))
