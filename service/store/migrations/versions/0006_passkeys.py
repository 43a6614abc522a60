"""Passkeys: each user's WebAuthn credentials (store/passkeys.py).

`webauthn_credentials`: the credential id (base64url, unique across users), its public key
(COSE), the last sign count (a count going backwards means a cloned authenticator), the
user handle the authenticator holds for a discoverable credential, a name, transports,
backup eligibility and state, and when it was made and last used.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webauthn_credentials",
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
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("uq_webauthn_credentials_credential_id", "webauthn_credentials",
                    ["credential_id"], unique=True)
    op.create_index("ix_webauthn_credentials_user_id", "webauthn_credentials", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_webauthn_credentials_user_id", "webauthn_credentials")
    op.drop_index("uq_webauthn_credentials_credential_id", "webauthn_credentials")
    op.drop_table("webauthn_credentials")
