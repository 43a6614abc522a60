"""The users table (SQLAlchemy Core) and its store on `databases`."""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from databases import Database


def fold(text: str) -> str:
    """NFKC + case folding: the form the unique indexes and look-ups
    compare (users.username_norm, users.email_norm)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


metadata = sa.MetaData()

users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(150), nullable=False),
    sa.Column("username_norm", sa.String(600), nullable=False),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("email_norm", sa.String(1000), nullable=False),
    sa.Column("display_name", sa.String(150), nullable=False, server_default=""),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("password_hash", sa.String(255), nullable=False),
    # Tokens carry the version they were minted under; a reset bumps it (the per-user cut-off).
    sa.Column("token_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("date_joined", sa.DateTime(timezone=True), nullable=False),
    sa.Column("email_verified", sa.Boolean, nullable=False, server_default=sa.false()),
    # The Django id of a user imported by `authsvc import-django` (old tokens name it).
    sa.Column("legacy_id", sa.BigInteger, nullable=True),
    sa.Index("uq_users_username_norm", "username_norm", unique=True),
    sa.Index("uq_users_email_norm", "email_norm", unique=True),
    sa.Index("uq_users_legacy_id", "legacy_id", unique=True),
    # An id is never given to a second account (a deleted account's tokens name it): SQLite
    # without AUTOINCREMENT reuses the highest id once it is deleted. PostgreSQL's serial
    # never goes back.
    sqlite_autoincrement=True,
)


# The move from Django (migration 0004, store/legacy.py): every Django id ever imported (kept
# after the account is deleted here, so no import brings it back), and old refresh tokens by
# jti: blacklisted on the old side, or the session their first use here started.
legacy_users = sa.Table(
    "legacy_users", metadata,
    sa.Column("legacy_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
    # Old access tokens of this user issued before this moment (Unix time) are refused: a
    # logout (they name no session to end); old refresh tokens too after `sessions_ended_at`
    # (logout everywhere: one never used here has no session to end either).
    sa.Column("tokens_ended_at", sa.BigInteger, nullable=True),
    sa.Column("sessions_ended_at", sa.BigInteger, nullable=True),
)

legacy_tokens = sa.Table(
    "legacy_tokens", metadata,
    sa.Column("jti", sa.String(255), primary_key=True),
    sa.Column("legacy_id", sa.BigInteger, nullable=False),
    sa.Column("sid", sa.String(64), nullable=True),
    sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
)


# Tables whose rows belong to one user (store/mfa.py, which builds on this module's metadata).
_CHILD_TABLES = ("mfa_recovery_codes", "mfa_totp", "webauthn_credentials")


def _select_user_by(column: str) -> sa.TextualSelect:
    """`SELECT <every column> FROM users WHERE <column> = :key`, written once: `databases`
    compiles a Core select() afresh on every call (about 0.14 ms of a login, measured), a
    text clause it only has to bind. The columns keep their types (datetimes, booleans)."""
    names = ", ".join(c.name for c in users.c)
    clause = sa.text(f"SELECT {names} FROM users WHERE {column} = :key")
    return clause.columns(*users.c)


_USER_BY = {name: _select_user_by(name)
            for name in ("id", "username_norm", "email_norm", "legacy_id")}

# What a refresh must judge on the database's word (issue 9.7), and nothing else: one narrow
# point read by primary key, written once (see _select_user_by).
_TOKEN_STATE_BY_ID = "SELECT token_version, is_active, role FROM users WHERE id = "
_TOKEN_STATE = sa.text(_TOKEN_STATE_BY_ID + ":key").columns(
    users.c.token_version, users.c.is_active, users.c.role)
_TOKEN_STATE_SQLITE = _TOKEN_STATE_BY_ID + "?"


@dataclass(frozen=True)
class TokenState:
    """The columns that decide whether a user's tokens may be renewed."""

    token_version: int
    is_active: bool
    role: str


@dataclass(frozen=True)
class User:
    id: int
    username: str
    email: str
    display_name: str
    role: str
    is_active: bool
    password_hash: str
    token_version: int
    date_joined: dt.datetime
    email_verified: bool = False
    legacy_id: int | None = None

    @classmethod
    def from_row(cls, row: Any) -> User:
        m = row._mapping
        return cls(id=m["id"], username=m["username"], email=m["email"],
                   display_name=m["display_name"], role=m["role"],
                   is_active=bool(m["is_active"]), password_hash=m["password_hash"],
                   token_version=m["token_version"], date_joined=m["date_joined"],
                   email_verified=bool(m["email_verified"]), legacy_id=m["legacy_id"])


class DuplicateUser(Exception):
    """The username or email is taken (judged by the unique index on its folded form)."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def _unique_violation_field(exc: BaseException) -> str | None:
    """Which unique field an insert collided on (SQLite and PostgreSQL), else None."""
    text = str(exc)
    unique = (type(exc).__name__ == "UniqueViolationError"
              or (type(exc).__name__ == "IntegrityError" and "UNIQUE" in text))
    if not unique:
        return None
    for field in ("username", "email"):
        if f"{field}_norm" in text:
            return field
    return None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UserStore:
    def __init__(self, database: Database) -> None:
        self._db = database
        self._sqlite = database.url.dialect == "sqlite"

    async def ping(self) -> None:
        await self._db.fetch_val(sa.text("SELECT 1"))

    async def _fetch_one(self, query: Any) -> User | None:
        row = await self._db.fetch_one(query)
        return User.from_row(row) if row is not None else None

    async def create(self, *, username: str, email: str, display_name: str, role: str,
                     password_hash: str) -> User:
        now = _now()
        values = {"username": username, "username_norm": fold(username), "email": email,
                  "email_norm": fold(email), "display_name": display_name, "role": role,
                  "is_active": True, "password_hash": password_hash, "token_version": 0,
                  "password_changed_at": now, "date_joined": now}
        try:
            user_id = await self._db.execute(users.insert().values(**values))
        except Exception as exc:
            field = _unique_violation_field(exc)
            if field is None:
                raise
            raise DuplicateUser(field) from exc
        user = await self.by_id(int(user_id))
        assert user is not None
        return user

    async def taken(self, *, username: str, email: str) -> list[str]:
        """Which of username/email already belong to someone (a friendly early answer)."""
        query = sa.select(users.c.username_norm, users.c.email_norm).where(
            sa.or_(users.c.username_norm == fold(username), users.c.email_norm == fold(email)))
        rows = await self._db.fetch_all(query)
        found = []
        if any(r._mapping["username_norm"] == fold(username) for r in rows):
            found.append("username")
        if any(r._mapping["email_norm"] == fold(email) for r in rows):
            found.append("email")
        return found

    async def _by(self, column: str, key: int | str) -> User | None:
        return await self._fetch_one(_USER_BY[column].bindparams(key=key))

    async def by_id(self, user_id: int) -> User | None:
        return await self._by("id", user_id)

    async def token_state(self, user_id: int) -> TokenState | None:
        """Token version, active flag and role of a user (None if no such row)."""
        if self._sqlite:
            # Every refresh asks this. `databases` would compile the statement and hop to the
            # connection's thread three times (execute, fetch, close the cursor): about 0.5 ms
            # of CPU; the connection's own execute_fetchall is one hop, about 0.14 ms
            # (bench/README.md). Same connection pool, same statement.
            async with self._db.connection() as connection:
                rows = await connection.raw_connection.execute_fetchall(
                    _TOKEN_STATE_SQLITE, (user_id,))
            if not rows:
                return None
            version, active, role = rows[0]
            return TokenState(int(version), bool(active), str(role))
        row = await self._db.fetch_one(_TOKEN_STATE.bindparams(key=user_id))
        if row is None:
            return None
        m = row._mapping
        return TokenState(int(m["token_version"]), bool(m["is_active"]), str(m["role"]))

    async def by_identifier(self, identifier: str) -> User | None:
        """A username, or an email when it contains '@' (usernames never do)."""
        folded = fold(identifier)  # fold first: a fullwidth ＠ is an @ too
        return await self._by("email_norm" if "@" in folded else "username_norm", folded)

    async def by_legacy_id(self, legacy_id: int) -> User | None:
        """The user imported from Django with this id (old tokens name it)."""
        return await self._by("legacy_id", legacy_id)

    async def by_email(self, email: str) -> User | None:
        return await self._by("email_norm", fold(email))

    async def delete(self, user_id: int) -> None:
        """The row and everything that hangs on it (second factors, store/mfa.py), in one
        transaction: SQLite enforces no foreign key unless asked, so nothing cascades there."""
        async with self._db.transaction():
            for table in _CHILD_TABLES:
                await self._db.execute(sa.text(f"DELETE FROM {table} WHERE user_id = :uid")
                                       .bindparams(uid=user_id))
            await self._db.execute(users.delete().where(users.c.id == user_id))

    async def set_email_verified(self, user_id: int) -> None:
        await self._db.execute(
            users.update().where(users.c.id == user_id).values(email_verified=True))

    async def set_display_name(self, user_id: int, display_name: str) -> None:
        await self._db.execute(
            users.update().where(users.c.id == user_id).values(display_name=display_name))

    async def upgrade_hash(self, user_id: int, old_hash: str, new_hash: str) -> None:
        """Store a re-hash made with current parameters, unless the password changed meanwhile."""
        await self._db.execute(users.update().where(
            (users.c.id == user_id) & (users.c.password_hash == old_hash)
        ).values(password_hash=new_hash))

    async def set_password(self, user_id: int, password_hash: str,
                           expected_version: int) -> User | None:
        """Change the password and bump the token version, only if the version is still
        `expected_version` (no reset or change landed since it was read); returns the new
        row, or None when it lost that race."""
        async with self._db.transaction():
            await self._db.execute(users.update().where(
                (users.c.id == user_id) & (users.c.token_version == expected_version)
            ).values(password_hash=password_hash, password_changed_at=_now(),
                     token_version=users.c.token_version + 1))
            row = await self.by_id(user_id)
        # Hashes are salted: the stored one is ours only if our update applied.
        return row if row is not None and row.password_hash == password_hash else None

    async def remove_password(self, user_id: int, unusable: str) -> None:
        """A passwordless account: `unusable` (`!…`) matches no password (core/passwords)."""
        await self._db.execute(users.update().where(users.c.id == user_id).values(
            password_hash=unusable, password_changed_at=_now()))

    async def set_active(self, user_id: int, active: bool) -> None:
        await self._db.execute(
            users.update().where(users.c.id == user_id).values(
                is_active=active, token_version=users.c.token_version + 1))

    # -- admin ---------------------------------------------------------------------------
    async def list_users(self, filters: UserFilter, *, offset: int, limit: int) -> list[User]:
        """One page of the users matching `filters`, ordered by id."""
        query = (users.select().where(*filters.conditions()).order_by(users.c.id)
                 .offset(offset).limit(limit))
        return [User.from_row(row) for row in await self._db.fetch_all(query)]

    async def count_users(self, filters: UserFilter) -> int:
        query = sa.select(sa.func.count()).select_from(users).where(*filters.conditions())
        return int(await self._db.fetch_val(query))

    async def set_role_and_bump(self, user_id: int, role: str) -> None:
        """Change the role and the token version, so tokens minted under the old role die."""
        await self._db.execute(users.update().where(users.c.id == user_id).values(
            role=role, token_version=users.c.token_version + 1))

    async def bump_token_version(self, user_id: int) -> None:
        """Refuse every token issued so far (admin revoke)."""
        await self._db.execute(users.update().where(users.c.id == user_id).values(
            token_version=users.c.token_version + 1))


@dataclass(frozen=True)
class UserFilter:
    """The admin listing's filters; None matches anything."""

    role: str | None = None
    is_active: bool | None = None
    search: str | None = None

    def conditions(self) -> list[Any]:
        found: list[Any] = []
        if self.role is not None:
            found.append(users.c.role == self.role)
        if self.is_active is not None:
            found.append(users.c.is_active == self.is_active)
        if self.search:
            # Usernames and emails are matched on their folded forms (Unicode case folding
            # everywhere); display_name through ILIKE (PostgreSQL) or lower() (SQLite, ASCII
            # only). The patterns are bound whole: `databases` %-formats the SQL text, so a
            # literal % in it (as SQLAlchemy's contains() writes) would break.
            folded, raw = _like_pattern(fold(self.search)), _like_pattern(self.search)
            found.append(sa.or_(users.c.username_norm.like(folded, escape=_ESCAPE),
                                users.c.email_norm.like(folded, escape=_ESCAPE),
                                users.c.display_name.ilike(raw, escape=_ESCAPE)))
        return found


_ESCAPE = "/"


def _like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its % and _ taken literally."""
    for char in (_ESCAPE, "%", "_"):
        text = text.replace(char, _ESCAPE + char)
    return f"%{text}%"
