"""A second factor: each user's TOTP authenticator and recovery codes (store/mfa.py).

- `mfa_totp`: one row per user who has, or is enrolling, an authenticator; secrets sealed
  with the [mfa] encryption key, `last_step` the last time step a code was accepted for.
- `mfa_recovery_codes`: keyed hashes of the user's recovery codes, `used_at` once spent.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mfa_totp",
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  primary_key=True, autoincrement=False),
        sa.Column("secret", sa.String(255), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pending_secret", sa.String(255), nullable=True),
        sa.Column("pending_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_step", sa.BigInteger, nullable=False, server_default="0"))
    op.create_table(
        "mfa_recovery_codes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("uq_mfa_recovery_codes_user_hash", "mfa_recovery_codes",
                    ["user_id", "code_hash"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_mfa_recovery_codes_user_hash", "mfa_recovery_codes")
    op.drop_table("mfa_recovery_codes")
    op.drop_table("mfa_totp")
