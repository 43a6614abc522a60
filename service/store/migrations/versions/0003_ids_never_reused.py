"""Ids are never reused: SQLite's users.id becomes AUTOINCREMENT.

Without it SQLite gives the highest id again once that row is deleted, and the new account
inherited the deleted one's sessions and tokens (they name the id). The table is rebuilt
(Alembic's batch copy), keeping every row; SQLite's sequence starts at the highest id kept.
PostgreSQL's `serial` (a sequence) never goes back already: nothing to do there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The batch copy's work table: a copy interrupted before it committed can leave it behind
# (SQLite runs CREATE TABLE outside the copy's transaction); the rows are still in `users`.
_WORK_TABLE = "_alembic_tmp_users"


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(f"DROP TABLE IF EXISTS {_WORK_TABLE}")
    with op.batch_alter_table("users", recreate="always",
                              table_kwargs={"sqlite_autoincrement": autoincrement}):
        pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
