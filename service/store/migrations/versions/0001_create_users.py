"""Create the users table.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(150), nullable=False),
        sa.Column("username_norm", sa.String(600), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("email_norm", sa.String(1000), nullable=False),
        sa.Column("display_name", sa.String(150), nullable=False, server_default=""),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("token_version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("date_joined", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("uq_users_username_norm", "users", ["username_norm"], unique=True)
    op.create_index("uq_users_email_norm", "users", ["email_norm"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_users_email_norm", table_name="users")
    op.drop_index("uq_users_username_norm", table_name="users")
    op.drop_table("users")
