"""Migration 0004 (the move from Django): every row kept on the way up and down, on SQLite
and PostgreSQL, and SQLite's AUTOINCREMENT (0003) survives the downgrade's table rebuild."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from test_id_migration import everything, execute, insert, run

from service.store import migrate

BEFORE = "0003"
REVISION = "0004"  # the migration these tests are about (later ones add tables)


def test_the_upgrade_keeps_every_row_and_adds_an_empty_legacy_id(database_url: str) -> None:
    migrate.upgrade(database_url, BEFORE)
    for name in ("alice", "bob"):
        run(database_url, insert(name))
    before = run(database_url, everything)
    migrate.upgrade(database_url, REVISION)
    assert migrate.current(database_url) == REVISION
    assert run(database_url, everything) == [(*row, None) for row in before]
    run(database_url, execute("UPDATE users SET legacy_id = 7 WHERE username = 'alice'"))
    with pytest.raises(sa.exc.IntegrityError):  # one authsvc user per Django id
        run(database_url, execute("UPDATE users SET legacy_id = 7 WHERE username = 'bob'"))


def test_the_downgrade_keeps_every_row_and_ids_are_still_never_reused(database_url: str) -> None:
    migrate.upgrade(database_url, REVISION)
    run(database_url, insert("alice"))
    bob = run(database_url, insert("bob", legacy_id=3))
    before = [row[:-1] for row in run(database_url, everything)]
    command.downgrade(migrate.alembic_config(database_url), BEFORE)
    assert migrate.current(database_url) == BEFORE
    assert run(database_url, everything) == before
    run(database_url, execute("DELETE FROM users WHERE id = :id", id=bob))
    assert run(database_url, insert("carol")) == bob + 1
