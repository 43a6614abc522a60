"""Second factors in SQL (migration 0005): a user's TOTP authenticator and recovery codes;
which factors a user has, passkeys (store/passkeys.py) included.

The database holds only what a stolen copy of it cannot use: TOTP secrets sealed with the
[mfa] encryption key (core/mfa_secrets.py), recovery codes as keyed hashes. Each use of a
factor is one conditional UPDATE, so two requests racing with one code cannot both win, on
SQLite (writes are serialised) as on PostgreSQL (the row is locked).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from databases import Database
from sqlalchemy.dialects import postgresql, sqlite

from service.store.users import metadata

mfa_totp = sa.Table(
    "mfa_totp", metadata,
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
              primary_key=True, autoincrement=False),
    # The authenticator in use (NULL until the first one is confirmed) and the one being
    # enrolled (NULL unless an enrolment waits for its first code). Both sealed.
    sa.Column("secret", sa.String(255), nullable=True),
    sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("pending_secret", sa.String(255), nullable=True),
    sa.Column("pending_at", sa.DateTime(timezone=True), nullable=True),
    # The last time step a code was accepted for: that code, and every older one, is spent.
    sa.Column("last_step", sa.BigInteger, nullable=False, server_default="0"),
)

mfa_recovery_codes = sa.Table(
    "mfa_recovery_codes", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("code_hash", sa.String(64), nullable=False),
    sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("uq_mfa_recovery_codes_user_hash", "user_id", "code_hash", unique=True),
)

_FACTORS_SQL = (
    "SELECT (SELECT secret IS NOT NULL FROM mfa_totp WHERE user_id = :uid) AS totp, "
    "(SELECT COUNT(*) FROM mfa_recovery_codes WHERE user_id = :uid AND used_at IS NULL) "
    "AS codes, (SELECT COUNT(*) FROM webauthn_credentials WHERE user_id = :uid) AS passkeys")
_FACTORS_OF = sa.text(_FACTORS_SQL)
_PASSKEY_OWNERS = sa.text("SELECT DISTINCT user_id FROM webauthn_credentials "
                          "WHERE user_id IN :ids").bindparams(sa.bindparam("ids", expanding=True))
_LOCK_USER = sa.text("UPDATE users SET token_version = token_version WHERE id = :uid "
                     "RETURNING id")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Factors:
    """What stands between a password and a session for one user."""

    totp: bool            # a confirmed authenticator
    codes_left: int       # unused recovery codes
    passkeys: int = 0     # WebAuthn credentials

    @property
    def any(self) -> bool:
        """A second factor is on (recovery codes alone never are: they back up a factor)."""
        return self.totp or self.passkeys > 0

    def methods(self) -> list[str]:
        """The methods a sign-in or re-authentication may use, in the API's order."""
        if not self.any:
            return []
        return [*(["webauthn"] if self.passkeys else []), *(["totp"] if self.totp else []),
                *(["recovery_code"] if self.codes_left else [])]


NO_FACTORS = Factors(False, 0)


@dataclass(frozen=True)
class TotpRow:
    secret: str | None
    confirmed_at: dt.datetime | None
    pending_secret: str | None
    pending_at: dt.datetime | None


class MfaStore:
    def locked(self, user_id: int) -> _Locked:
        """A transaction holding the user's row locked: a rule checked inside it holds for
        the writes made inside it (a passwordless account's last passkey, a role's last
        factor), however many requests race."""
        return _Locked(self._db, user_id)

    def __init__(self, database: Database) -> None:
        self._db = database
        self._sqlite = database.url.dialect != "postgresql"
        self._insert = postgresql.insert if not self._sqlite else sqlite.insert

    async def factors(self, user_id: int) -> Factors:
        """Every login asks this once the password is right. On SQLite the connection's own
        execute_fetchall, one thread hop, as UserStore.token_state does (bench/README.md:
        `databases` cost a login's path around the hash 1.4x)."""
        if self._sqlite:
            async with self._db.connection() as connection:
                rows = await connection.raw_connection.execute_fetchall(
                    _FACTORS_SQL, {"uid": user_id})
            totp, codes, passkeys = rows[0]
            return Factors(bool(totp), int(codes or 0), int(passkeys or 0))
        row = await self._db.fetch_one(_FACTORS_OF.bindparams(uid=user_id))
        if row is None:
            return NO_FACTORS
        m = row._mapping
        return Factors(bool(m["totp"]), int(m["codes"] or 0), int(m["passkeys"] or 0))

    async def methods_of(self, user_ids: Iterable[int]) -> dict[int, list[str]]:
        """Each user's sign-in methods (the admin API's list): two queries for a page."""
        ids = list(user_ids)
        if not ids:
            return {}
        totp = {r._mapping["user_id"] for r in await self._db.fetch_all(
            sa.select(mfa_totp.c.user_id).where(mfa_totp.c.user_id.in_(ids),
                                                mfa_totp.c.secret.is_not(None)))}
        coded = {r._mapping["user_id"] for r in await self._db.fetch_all(
            sa.select(mfa_recovery_codes.c.user_id).distinct().where(
                mfa_recovery_codes.c.user_id.in_(ids), mfa_recovery_codes.c.used_at.is_(None)))}
        keyed = {r._mapping["user_id"] for r in await self._db.fetch_all(
            _PASSKEY_OWNERS.bindparams(ids=ids))}
        return {uid: Factors(uid in totp, int(uid in coded), int(uid in keyed)).methods()
                for uid in ids}

    async def totp(self, user_id: int) -> TotpRow | None:
        row = await self._db.fetch_one(sa.select(
            mfa_totp.c.secret, mfa_totp.c.confirmed_at, mfa_totp.c.pending_secret,
            mfa_totp.c.pending_at,
        ).where(mfa_totp.c.user_id == user_id))
        if row is None:
            return None
        m = row._mapping
        return TotpRow(m["secret"], m["confirmed_at"], m["pending_secret"], m["pending_at"])

    async def set_pending(self, user_id: int, sealed: str, at: dt.datetime) -> None:
        """Start (or restart) an enrolment; the authenticator in use, if any, stays. One
        statement: two first enrolments at once (a double click) both land, the last wins."""
        statement = self._insert(mfa_totp).values(
            user_id=user_id, pending_secret=sealed, pending_at=at, last_step=0)
        await self._db.execute(statement.on_conflict_do_update(
            index_elements=[mfa_totp.c.user_id],
            set_={"pending_secret": sealed, "pending_at": at}))

    async def confirm_pending(self, user_id: int, sealed: str, step: int,
                              code_hashes: list[str]) -> bool:
        """The pending secret `sealed` becomes the authenticator, spending time step `step`;
        with `code_hashes`, the recovery codes are replaced by them, in one transaction.
        False if the enrolment changed meanwhile (restarted, confirmed by another request)."""
        async with self._db.transaction():
            done = await self._db.fetch_one(
                mfa_totp.update().where((mfa_totp.c.user_id == user_id)
                                        & (mfa_totp.c.pending_secret == sealed))
                .values(secret=sealed, confirmed_at=_now(), pending_secret=None,
                        pending_at=None, last_step=step)
                .returning(mfa_totp.c.user_id))
            if done is None:
                return False
            if code_hashes:
                await self._replace_codes(user_id, code_hashes)
        return True

    async def spend_step(self, user_id: int, secret: str, step: int) -> bool:
        """Accept a code of time step `step` for the authenticator `secret`: once, and never
        after a later step's code (RFC 6238 5.2). False: replayed, or the factor changed."""
        spent = await self._db.fetch_one(
            mfa_totp.update().where((mfa_totp.c.user_id == user_id)
                                    & (mfa_totp.c.secret == secret)
                                    & (mfa_totp.c.last_step < step))
            .values(last_step=step).returning(mfa_totp.c.user_id))
        return spent is not None

    async def use_code(self, user_id: int, code_hash: str) -> int | None:
        """Spend an unused recovery code; its id, or None (unknown or already used)."""
        used = await self._db.fetch_one(
            mfa_recovery_codes.update().where(
                (mfa_recovery_codes.c.user_id == user_id)
                & (mfa_recovery_codes.c.code_hash == code_hash)
                & mfa_recovery_codes.c.used_at.is_(None))
            .values(used_at=_now()).returning(mfa_recovery_codes.c.id))
        return None if used is None else int(used._mapping["id"])

    async def unuse_code(self, code_id: int) -> None:
        """Give a code back when what it was spent on could not happen (no half-done login)."""
        await self._db.execute(mfa_recovery_codes.update().where(
            mfa_recovery_codes.c.id == code_id).values(used_at=None))

    async def replace_codes(self, user_id: int, code_hashes: list[str]) -> bool:
        """A new set of recovery codes, the old set gone; only while a factor is on. The
        user's row is written first, which locks it (PostgreSQL) and takes the write lock
        (SQLite) before anything is read: parallel regenerations run one after another, and
        exactly one set survives."""
        async with self._db.transaction():
            await self._db.fetch_one(_LOCK_USER.bindparams(uid=user_id))
            if not (await self.factors(user_id)).any:
                return False
            await self._replace_codes(user_id, code_hashes)
        return True

    async def _replace_codes(self, user_id: int, code_hashes: list[str]) -> None:
        await self._db.execute(mfa_recovery_codes.delete().where(
            mfa_recovery_codes.c.user_id == user_id))
        await self._db.execute_many(mfa_recovery_codes.insert(),
                                    [{"user_id": user_id, "code_hash": h} for h in code_hashes])

    async def remove_totp(self, user_id: int) -> bool:
        """The authenticator gone, and the recovery codes with it unless a passkey remains
        for them to back up; True if there was one."""
        async with self._db.transaction():
            await self._db.fetch_one(_LOCK_USER.bindparams(uid=user_id))
            had = await self._db.fetch_one(
                mfa_totp.delete().where(mfa_totp.c.user_id == user_id)
                .returning(mfa_totp.c.secret))
            if not (await self.factors(user_id)).passkeys:
                await self._db.execute(mfa_recovery_codes.delete().where(
                    mfa_recovery_codes.c.user_id == user_id))
        return had is not None and had._mapping["secret"] is not None

    async def remove_all(self, user_id: int) -> bool:
        """Every factor of the user gone (authenticator, passkeys, recovery codes), in one
        transaction; True if there was one."""
        async with self._db.transaction():
            await self._db.fetch_one(_LOCK_USER.bindparams(uid=user_id))
            had = (await self.factors(user_id)).any
            for table in ("mfa_totp", "mfa_recovery_codes", "webauthn_credentials"):
                await self._db.execute(sa.text(f"DELETE FROM {table} WHERE user_id = :uid")
                                       .bindparams(uid=user_id))
        return had


class _Locked:
    def __init__(self, database: Database, user_id: int) -> None:
        self._db = database
        self._user_id = user_id
        self._transaction: Any = None

    async def __aenter__(self) -> None:
        self._transaction = self._db.transaction()
        await self._transaction.__aenter__()
        await self._db.fetch_one(_LOCK_USER.bindparams(uid=self._user_id))

    async def __aexit__(self, *exc: object) -> None:
        await self._transaction.__aexit__(*exc)
