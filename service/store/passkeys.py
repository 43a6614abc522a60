"""Passkeys in SQL (migration 0006): each user's WebAuthn credentials.

A credential's public key is no secret; what matters is that a use is recorded once: the
sign count is moved forward by one conditional UPDATE, so two assertions racing with one
counter value (a cloned authenticator) cannot both be accepted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from databases import Database

from service.store.users import metadata

webauthn_credentials = sa.Table(
    "webauthn_credentials", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("credential_id", sa.String(1400), nullable=False),
    sa.Column("user_handle", sa.String(64), nullable=False),
    sa.Column("public_key", sa.LargeBinary, nullable=False),
    sa.Column("sign_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("transports", sa.String(200), nullable=False, server_default=""),
    sa.Column("backup_eligible", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("backup_state", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("discoverable", sa.Boolean, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("uq_webauthn_credentials_credential_id", "credential_id", unique=True),
    sa.Index("ix_webauthn_credentials_user_id", "user_id"),
)


@dataclass(frozen=True)
class Passkey:
    id: int
    user_id: int
    credential_id: str  # base64url
    user_handle: str    # base64url
    public_key: bytes
    sign_count: int
    name: str
    transports: tuple[str, ...]
    backup_eligible: bool
    backup_state: bool
    discoverable: bool | None
    created_at: dt.datetime
    last_used_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Passkey:
        m = row._mapping
        return cls(int(m["id"]), int(m["user_id"]), m["credential_id"], m["user_handle"],
                   bytes(m["public_key"]), int(m["sign_count"]), m["name"],
                   tuple(t for t in m["transports"].split(",") if t),
                   bool(m["backup_eligible"]), bool(m["backup_state"]),
                   None if m["discoverable"] is None else bool(m["discoverable"]),
                   m["created_at"], m["last_used_at"])


class DuplicateCredential(Exception):
    """That credential is registered already (to this user or another)."""


class PasskeyStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def of_user(self, user_id: int) -> list[Passkey]:
        rows = await self._db.fetch_all(webauthn_credentials.select().where(
            webauthn_credentials.c.user_id == user_id).order_by(webauthn_credentials.c.id))
        return [Passkey.from_row(r) for r in rows]

    async def by_credential_id(self, credential_id: str) -> Passkey | None:
        row = await self._db.fetch_one(webauthn_credentials.select().where(
            webauthn_credentials.c.credential_id == credential_id))
        return None if row is None else Passkey.from_row(row)

    async def add(self, *, user_id: int, credential_id: str, user_handle: str,
                  public_key: bytes, sign_count: int, name: str, transports: tuple[str, ...],
                  backup_eligible: bool, backup_state: bool, discoverable: bool | None,
                  at: dt.datetime) -> Passkey:
        try:
            new_id = await self._db.execute(webauthn_credentials.insert().values(
                user_id=user_id, credential_id=credential_id, user_handle=user_handle,
                public_key=public_key, sign_count=sign_count, name=name,
                transports=",".join(transports), backup_eligible=backup_eligible,
                backup_state=backup_state, discoverable=discoverable, created_at=at))
        except Exception as exc:
            if "unique" in str(exc).lower() or type(exc).__name__ == "UniqueViolationError":
                raise DuplicateCredential() from exc
            raise
        found = await self._db.fetch_one(webauthn_credentials.select().where(
            webauthn_credentials.c.id == int(new_id)))
        assert found is not None
        return Passkey.from_row(found)

    async def rename(self, user_id: int, key_id: str, name: str) -> Passkey | None:
        done = await self._db.fetch_one(webauthn_credentials.update().where(
            (webauthn_credentials.c.user_id == user_id)
            & (webauthn_credentials.c.credential_id == key_id))
            .values(name=name).returning(*webauthn_credentials.c))
        return None if done is None else Passkey.from_row(done)

    async def delete(self, user_id: int, key_id: str) -> bool:
        gone = await self._db.fetch_one(webauthn_credentials.delete().where(
            (webauthn_credentials.c.user_id == user_id)
            & (webauthn_credentials.c.credential_id == key_id))
            .returning(webauthn_credentials.c.id))
        return gone is not None

    async def record_use(self, passkey: Passkey, sign_count: int, backup_state: bool,
                         at: dt.datetime) -> bool:
        """Record an accepted assertion: its sign count must still be ahead of the stored
        one (0 stays 0: authenticators that keep no counter). False: another assertion with
        this count won (a cloned authenticator), or the passkey is gone."""
        c = webauthn_credentials.c
        ahead = (c.sign_count < sign_count) if sign_count else (c.sign_count == 0)
        used = await self._db.fetch_one(webauthn_credentials.update().where(
            (c.id == passkey.id) & ahead)
            .values(sign_count=sign_count, backup_state=backup_state, last_used_at=at)
            .returning(c.id))
        return used is not None
