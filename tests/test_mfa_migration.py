"""Migration 0005 (a second factor): users kept on the way up and down, on SQLite and
PostgreSQL; the new tables hold one authenticator per user and unique codes per user."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from test_id_migration import everything, execute, insert, run

from service.store import migrate

BEFORE, REVISION = "0004", "0005"


def test_the_upgrade_keeps_every_user_and_the_downgrade_drops_only_the_factors(
        database_url: str) -> None:
    migrate.upgrade(database_url, BEFORE)
    alice = run(database_url, insert("alice"))
    before = run(database_url, everything)
    migrate.upgrade(database_url, REVISION)
    assert migrate.current(database_url) == REVISION
    assert run(database_url, everything) == before
    run(database_url, execute("INSERT INTO mfa_totp (user_id, secret, last_step) "
                              "VALUES (:u, 'v1:sealed', 0)", u=alice))
    with pytest.raises(sa.exc.IntegrityError):  # one authenticator per user
        run(database_url, execute("INSERT INTO mfa_totp (user_id, last_step) VALUES (:u, 0)",
                                  u=alice))
    run(database_url, execute("INSERT INTO mfa_recovery_codes (user_id, code_hash) "
                              "VALUES (:u, 'h')", u=alice))
    with pytest.raises(sa.exc.IntegrityError):  # a user's codes are distinct
        run(database_url, execute("INSERT INTO mfa_recovery_codes (user_id, code_hash) "
                                  "VALUES (:u, 'h')", u=alice))
    command.downgrade(migrate.alembic_config(database_url), BEFORE)
    assert migrate.current(database_url) == BEFORE
    assert run(database_url, everything) == before
    migrate.upgrade(database_url, REVISION)  # and up again, empty
    assert migrate.current(database_url) == REVISION


def test_0006_keeps_every_user_and_one_credential_id_belongs_to_one_passkey(
        database_url: str) -> None:
    """Migration 0006 (passkeys): users kept up and down; a credential id is unique."""
    migrate.upgrade(database_url, REVISION)
    alice = run(database_url, insert("alice"))
    bob = run(database_url, insert("bob"))
    before = run(database_url, everything)
    migrate.upgrade(database_url, "0006")
    assert run(database_url, everything) == before
    add = ("INSERT INTO webauthn_credentials (user_id, credential_id, user_handle, public_key, "
           "sign_count, name, transports, backup_eligible, backup_state, created_at) VALUES "
           "(:u, 'cred', 'h', :k, 0, 'Laptop', '', false, false, CURRENT_TIMESTAMP)")
    run(database_url, execute(add, u=alice, k=b"\x01"))
    with pytest.raises(sa.exc.IntegrityError):
        run(database_url, execute(add, u=bob, k=b"\x01"))
    command.downgrade(migrate.alembic_config(database_url), REVISION)
    assert run(database_url, everything) == before
