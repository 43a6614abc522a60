"""Moving in from Django: users.legacy_id, and the two tables of the cut-over.

- `users.legacy_id`: the Django id an imported user had (unique; NULL for everyone else).
  Old simplejwt tokens name that id.
- `legacy_users`: every Django id ever imported, kept when the account is deleted here, so a
  second import never brings a deleted account back; `tokens_ended_at` refuses that user's
  old access tokens issued before it (a logout), `sessions_ended_at` their old refresh
  tokens too (logout everywhere).
- `legacy_tokens`: old refresh tokens by jti: blacklisted on the old side (imported,
  `revoked`), or used here (`sid`: the session that use started; `revoked` once logged out).
  In SQL, not Redis: a lost Redis must not let a logged-out old token start a new session.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("legacy_id", sa.BigInteger, nullable=True))
        batch.create_index("uq_users_legacy_id", ["legacy_id"], unique=True)
    op.create_table(
        "legacy_users",
        sa.Column("legacy_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tokens_ended_at", sa.BigInteger, nullable=True),
        sa.Column("sessions_ended_at", sa.BigInteger, nullable=True))
    op.create_table(
        "legacy_tokens",
        sa.Column("jti", sa.String(255), primary_key=True),
        sa.Column("legacy_id", sa.BigInteger, nullable=False),
        sa.Column("sid", sa.String(64), nullable=True),
        sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("expires_at", sa.BigInteger, nullable=False))


def downgrade() -> None:
    op.drop_table("legacy_tokens")
    op.drop_table("legacy_users")
    # Dropping a column rebuilds SQLite's table: keep AUTOINCREMENT (0003) on the copy.
    with op.batch_alter_table("users", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_index("uq_users_legacy_id")
        batch.drop_column("legacy_id")
